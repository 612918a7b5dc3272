"""Tiny random GPT-2 and Llama models with their tokenizers, built offline with `transformers`
and `tokenizers` (test-only dependencies: the callers skip without them) and saved as HF folders.

The tokenizers are trained on TimeLLM-like prompts with a vocabulary of a few hundred tokens;
the Llama one pre-splits digits as SmolLM's does.
"""
from __future__ import annotations

import numpy as np
import pytest

VOCAB = 360
EOS = "<|endoftext|>"


def corpus(n: int = 60, seed: int = 0) -> list:
    """TimeLLM prompts with random statistics and lags, plus plain sentences."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lo, hi, med = np.sort(rng.standard_normal(3).astype(np.float32))
        lags = rng.integers(0, 48, 5).tolist()
        out.append("<|start_prompt|>Task description: forecast the next 12 steps given the previous 48 steps "
                   f"information; Input statistics: min value {float(lo)}, max value {float(hi)}, median value "
                   f"{float(med)}, the trend of input is {'upward' if rng.random() < 0.5 else 'downward'}, "
                   f"top 5 lags are : {lags}<|<end_prompt>|>")
    out += ["The quick brown fox jumps over the lazy dog's back; it's 1999!", "  spaces\tand\nnewlines  ",
            "Ünïcödé wörds, émojis 🙂 and 中文 text."]
    return out


def _gpt2_tokenizer(folder: str, add_prefix_space: bool = False):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast
    tok = ByteLevelBPETokenizer(add_prefix_space=add_prefix_space)
    tok.train_from_iterator(corpus(), vocab_size=VOCAB, special_tokens=[EOS], show_progress=False)
    tok.save_model(folder)   # vocab.json + merges.txt too (GPT-2's slow-tokenizer files)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok._tokenizer, eos_token=EOS, bos_token=EOS)
    hf.save_pretrained(folder)
    return hf


def _smollm_tokenizer(folder: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[EOS, "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS)
    hf.save_pretrained(folder)
    return hf


def tiny_gpt2(folder: str, n_positions: int = 256, n_embd: int = 64):
    """A 2-layer GPT-2 (d n_embd, 4 heads, no dropout) and its tokenizer saved to folder; returns the torch model."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    tok = _gpt2_tokenizer(folder)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=n_embd, n_head=4, vocab_size=len(tok), n_positions=n_positions,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                  bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    model = transformers.GPT2Model(cfg).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model


def tiny_llama(folder: str, kv_heads: int = 2):
    """A 2-layer Llama (d 64, 4 query heads, kv_heads key/value heads, RoPE theta 1e5) with a
    SmolLM-style tokenizer saved to folder; returns the torch model."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    tok = _smollm_tokenizer(folder)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                   num_key_value_heads=kv_heads, intermediate_size=96, vocab_size=len(tok),
                                   rope_theta=1e5, rms_norm_eps=1e-5, max_position_embeddings=512,
                                   bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                                   tie_word_embeddings=True)
    model = transformers.LlamaModel(cfg).eval()
    with torch.no_grad():   # norms away from 1, so a wrong norm weight shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    model.save_pretrained(folder, safe_serialization=True)
    return model
