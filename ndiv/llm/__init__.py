"""LLM backbones for TimeLLM on ndiv's tensor: GPT-2 and Llama under Hugging Face's names, a
byte-level BPE tokenizer, and loaders for HF folders (safetensors) and GGUF files (extra `llm`).
No torch, no hub, no pickle."""
from ndiv.llm.backbones import GPT2Model, LlamaModel, build_backbone
from ndiv.llm.loaders import load_gguf, load_hf_folder, load_llm, packaged_gguf
from ndiv.llm.tokenizer import BPETokenizer

__all__ = ["GPT2Model", "LlamaModel", "build_backbone", "BPETokenizer", "load_llm", "load_hf_folder", "load_gguf",
           "packaged_gguf"]
