"""ndiv's byte-level BPE against Hugging Face's tokenizer (GPT-2's pre-tokenizer, and SmolLM's
with single digits) on TimeLLM prompts and random strings; padding as NF's TimeLLM sets it up.
Skips without transformers/tokenizers (test-only dependencies)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from ndiv.llm import BPETokenizer
from ndiv.llm.tokenizer import bytes_to_unicode

from . import tiny_llm

ALPHABET = list("abcXYZ éüßñ中文ж 0123456789٣½²  \t\n\r.,;:!?'\"-_()[]{}<>|/\\@#$%^&*+=~`") + [
    "'s", "'ll", "'re", " the", "🙂", "\u00a0", "\u3000", "<|endoftext|>", "<|im_start|>", "1e-07"]


def random_strings(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(ALPHABET, size=int(rng.integers(1, 40)))) for _ in range(n)]


@pytest.fixture(scope="module", params=["gpt2", "smollm", "prefix-space"])
def pair(request, tmp_path_factory):
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from transformers import AutoTokenizer
    folder = str(tmp_path_factory.mktemp(request.param))
    make = dict(gpt2=tiny_llm._gpt2_tokenizer, smollm=tiny_llm._smollm_tokenizer,
                **{"prefix-space": lambda f: tiny_llm._gpt2_tokenizer(f, add_prefix_space=True)})
    make[request.param](folder)
    return AutoTokenizer.from_pretrained(folder), BPETokenizer.from_folder(folder), request.param


def test_equal_to_hf_on_prompts_and_random_strings(pair):
    hf, ours, kind = pair
    assert ours.split_digits == (kind == "smollm")
    texts = tiny_llm.corpus(30, seed=11) + random_strings(300, seed=3)
    for t in texts:
        assert ours.encode(t) == hf(t).input_ids, repr(t)


def test_batch_is_right_padded_with_eos_as_nf_sets_it(pair):
    hf, ours, _ = pair
    hf.pad_token = hf.eos_token                  # what NF's TimeLLM does
    texts = tiny_llm.corpus(4, seed=2) + ["short", "1 2 3"]
    want = hf(texts, return_tensors="np", padding=True, truncation=True, max_length=2048).input_ids
    got = ours(texts)
    assert got.dtype == np.int64 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert (got[-2, len(ours.encode("short")):] == ours.pad_token_id).all()
    np.testing.assert_array_equal(ours(texts, max_length=5), want[:, :5])


def test_byte_alphabet_is_gpt2s():
    m = bytes_to_unicode()
    assert len(m) == 256 and len(set(m.values())) == 256
    assert m[ord("a")] == "a" and m[ord(" ")] == "Ġ" and m[ord("\n")] == "Ċ"


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="eos_token '<eos>' is not in the vocabulary"):
        BPETokenizer({"a": 0}, [], eos_token="<eos>")
    tok = BPETokenizer({"a": 0}, [])
    with pytest.raises(ValueError, match="'b' .from 'ab'. is not in the vocabulary"):
        tok.encode("ab")
    with pytest.raises(ValueError, match="no eos token to pad with"):
        tok(["a"])


def test_without_the_regex_package_ascii_prompts_tokenize_the_same(pair, monkeypatch):
    """`regex` (for \\p{L}, \\p{N}) is optional: the standard library's classes give the same
    pre-tokens on ASCII text, which is all a TimeLLM prompt holds."""
    hf, ours, _ = pair
    monkeypatch.setitem(sys.modules, "regex", None)
    folder = hf.name_or_path
    plain = BPETokenizer.from_folder(folder)
    assert plain._pre.__class__.__module__ == "re"
    for t in tiny_llm.corpus(10, seed=7) + ["It's 12.5 apples; they'll cost $3!"]:
        assert plain.encode(t) == ours.encode(t) == hf(t).input_ids, t
