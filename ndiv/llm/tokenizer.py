"""A byte-level BPE tokenizer (GPT-2's, and SmolLM's with single-digit splitting), pure Python.

Built from the vocabulary and merges stored in an HF folder (tokenizer.json, or vocab.json +
merges.txt) or in a GGUF file (tokenizer.ggml.tokens / merges). Text -> special tokens split out
-> pre-tokens (GPT-2's regex; SmolLM also isolates each digit) -> bytes mapped to GPT-2's
printable alphabet -> BPE merges by rank -> ids. Batches pad on the right with the eos token,
as NF's TimeLLM sets up its tokenizer.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache

import numpy as np

# GPT-2's pre-tokenizer (needs \p{L}/\p{N}: the `regex` package, a dependency of the `gguf`/`llm`
# extra's siblings; without it, an equivalent in the standard library's classes)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_DIGIT = r"\p{N}"
_STDLIB_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""


def _compile(pattern: str):
    try:
        import regex
        return regex.compile(pattern)
    except ImportError:
        import re
        return re.compile({GPT2_PATTERN: _STDLIB_PATTERN, _DIGIT: r"\d"}[pattern])


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict:
    """GPT-2's map byte -> printable character (printable bytes map to themselves)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class BPETokenizer:
    """Byte-level BPE. vocab: token string -> id; merges: ["a b", ...] (or pairs) in rank order;
    special: tokens matched verbatim before pre-tokenisation; split_digits: SmolLM's rule (each
    digit its own pre-token); add_prefix_space: ByteLevel's option (a space before each text
    segment that does not start with one); eos_token: the pad token.

    __call__(texts, max_length=2048) -> input_ids [B, T] int64, right-padded with eos.
    """

    def __init__(self, vocab: dict, merges, special=(), split_digits: bool = False, eos_token: str | None = None,
                 add_prefix_space: bool = False):
        self.vocab = dict(vocab)
        self.ranks = {tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m): i for i, m in enumerate(merges)}
        self.special = sorted({s for s in special if s in self.vocab}, key=len, reverse=True)
        self.split_digits = split_digits
        if add_prefix_space and split_digits:
            raise ValueError("BPETokenizer: add_prefix_space with split_digits is not supported (HF adds the space "
                             "to every digit piece)")
        self.add_prefix_space = add_prefix_space
        if eos_token is not None and eos_token not in self.vocab:
            raise ValueError(f"BPETokenizer: eos_token {eos_token!r} is not in the vocabulary")
        self.eos_token = eos_token
        self.pad_token_id = self.vocab[eos_token] if eos_token is not None else None
        self._pre = _compile(GPT2_PATTERN)
        self._digits = _compile(_DIGIT) if split_digits else None
        self._byte = bytes_to_unicode()
        self._cache: dict = {}

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_folder(cls, folder: str) -> "BPETokenizer":
        """From an HF folder: tokenizer.json (preferred) or vocab.json + merges.txt; eos from
        tokenizer_config.json / special_tokens_map.json."""
        eos = None
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            path = os.path.join(folder, name)
            if eos is None and os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    e = json.load(f).get("eos_token")
                eos = e.get("content") if isinstance(e, dict) else e
        path = os.path.join(folder, "tokenizer.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                tj = json.load(f)
            model = tj["model"]
            if model.get("type") != "BPE":
                raise ValueError(f"BPETokenizer: {path} holds a {model.get('type')} model; ndiv reads byte-level BPE")
            vocab = dict(model["vocab"])
            special = []
            for t in tj.get("added_tokens", []):
                vocab.setdefault(t["content"], t["id"])
                special.append(t["content"])
            pre = tj.get("pre_tokenizer")
            return cls(vocab, model["merges"], special, split_digits=_has_digit_split(pre), eos_token=eos,
                       add_prefix_space=_has_prefix_space(pre))
        vocab_path, merges_path = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
        if not (os.path.exists(vocab_path) and os.path.exists(merges_path)):
            raise FileNotFoundError(f"BPETokenizer: {folder!r} has neither tokenizer.json nor vocab.json + merges.txt")
        with open(vocab_path, encoding="utf-8") as f:
            vocab = json.load(f)
        with open(merges_path, encoding="utf-8") as f:
            merges = [ln.rstrip("\n") for ln in f if ln.strip() and not ln.startswith("#version")]
        return cls(vocab, merges, [eos] if eos else [], eos_token=eos)

    @classmethod
    def from_gguf_fields(cls, tokens: list, merges: list, token_types: list | None, eos_id: int | None,
                         pre: str | None) -> "BPETokenizer":
        """From a GGUF file's tokenizer.ggml.* fields (types 3 and 4: control / user-defined tokens)."""
        vocab = {t: i for i, t in enumerate(tokens)}
        special = [t for t, k in zip(tokens, token_types or []) if k in (3, 4)]
        eos = tokens[eos_id] if eos_id is not None else None
        return cls(vocab, merges, special, split_digits=pre in ("smollm", "starcoder", "refact"), eos_token=eos)

    # -- encoding -----------------------------------------------------------------------------
    def _bpe(self, word: str) -> list:
        if word in self._cache:
            return self._cache[word]
        parts = list(word)
        while len(parts) > 1:
            ranked = [(self.ranks.get((a, b), 1 << 60), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, _ = min(ranked)
            if rank == 1 << 60:
                break
            pair = next((parts[i], parts[i + 1]) for r, i in ranked if r == rank)
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = parts
        return parts

    def _pieces(self, text: str):
        chunks = [text]
        if self._digits is not None:   # SmolLM: every digit is a pre-token of its own
            chunks, pos = [], 0
            for m in self._digits.finditer(text):
                chunks += [text[pos:m.start()], m.group()]
                pos = m.end()
            chunks.append(text[pos:])
        for chunk in chunks:
            yield from self._pre.findall(chunk)

    def encode(self, text: str) -> list:
        """text -> token ids (no bos, no eos)."""
        ids = []
        segments = [text]
        for s in self.special:
            segments = [p for seg in segments for p in (_split_keep(seg, s) if seg not in self.special else [seg])]
        for seg in segments:
            if seg in self.special:
                ids.append(self.vocab[seg])
                continue
            if self.add_prefix_space and not seg.startswith(" "):
                seg = " " + seg
            for piece in self._pieces(seg):
                mapped = "".join(self._byte[b] for b in piece.encode("utf-8"))
                for tok in self._bpe(mapped):
                    if tok not in self.vocab:
                        raise ValueError(f"BPETokenizer: {tok!r} (from {piece!r}) is not in the vocabulary")
                    ids.append(self.vocab[tok])
        return ids

    def __call__(self, texts, max_length: int = 2048) -> np.ndarray:
        """A list of texts -> input_ids [B, T] int64, truncated to max_length, right-padded with eos."""
        if self.pad_token_id is None:
            raise ValueError("BPETokenizer: no eos token to pad with")
        rows = [self.encode(t)[:max_length] for t in texts]
        out = np.full((len(rows), max(map(len, rows), default=0)), self.pad_token_id, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out

    def __len__(self) -> int:
        return len(self.vocab)


def _split_keep(text: str, sep: str) -> list:
    out = []
    for i, part in enumerate(text.split(sep)):
        if i:
            out.append(sep)
        if part:
            out.append(part)
    return out


def _has_prefix_space(pre) -> bool:
    if not pre:
        return False
    if pre.get("type") == "ByteLevel":
        return bool(pre.get("add_prefix_space"))
    return any(_has_prefix_space(p) for p in pre.get("pretokenizers", []))


def _has_digit_split(pre) -> bool:
    if not pre:
        return False
    if pre.get("type") == "Digits":
        return bool(pre.get("individual_digits"))
    return any(_has_digit_split(p) for p in pre.get("pretokenizers", []))
