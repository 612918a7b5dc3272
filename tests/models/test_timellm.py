"""TimeLLM on tiny random GPT-2 and Llama backbones built offline with transformers (skips without
it, torch or neuralforecast where they are needed): NF's TimeLLM with llm= the same folder loads
into ndiv's strictly and gives the same forecast; one training step matches (loss, gradients of
the trainable parameters, Adam update); NF's prompt text; a tiny fit/predict through Forecaster
and a save/load round trip; the errors name the option."""
from __future__ import annotations

import contextlib
import inspect
import re

import numpy as np
import pytest

import ndiv
from ndiv.losses import MQLoss
from ndiv.models import MODELS, TimeLLM
from ndiv.models.timellm import calculate_lags

from . import nf_reference as nf_ref
from ..llm import tiny_llm


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    out = {}
    for name, make, kw in (("gpt2", tiny_llm.tiny_gpt2, {}), ("gpt2-128", tiny_llm.tiny_gpt2, dict(n_embd=128)),
                           ("llama", tiny_llm.tiny_llama, {})):
        out[name] = str(tmp_path_factory.mktemp(name))
        make(out[name], **kw)
    return out


# NF's defaults (patch_len 16, stride 8, d_ff 128, d_model 32, n_heads 8, top_k 5) need a width >= 128;
# NF needs d_llm set to the backbone's width (ndiv reads it from the backbone)
CONFIGS = {
    "defaults-gpt2-128": ("gpt2-128", dict(h=12, input_size=48, d_llm=128)),
    "gpt2": ("gpt2", dict(h=6, input_size=24, d_llm=64, patch_len=8, stride=4, d_ff=16, d_model=8, n_heads=2, top_k=3,
                          prompt_prefix="The dataset holds monthly airline passengers. ")),
    "llama-gqa": ("llama", dict(h=5, input_size=30, d_llm=64, patch_len=6, stride=5, d_ff=64, d_model=16, n_heads=4)),
}
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _same_prompt(nf_prompt: str, ours: str, input_size: int):
    """Character for character, but for float32 rounding of the statistics (NF's RevIN and ours
    may differ in the last bit) and the order of the equal lags k and T - k (FFT rounding)."""
    assert NUMBER.sub("#", nf_prompt) == NUMBER.sub("#", ours), (nf_prompt, ours)
    lags_nf, lags_ours = (p.rsplit("[", 1) for p in (nf_prompt, ours))
    a, b = (np.array([float(v) for v in NUMBER.findall(p[0])]) for p in (lags_nf, lags_ours))
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    pair = lambda s: sorted(min(int(v), input_size - int(v)) for v in NUMBER.findall(s))  # noqa: E731
    assert pair(lags_nf[1]) == pair(lags_ours[1]), (nf_prompt, ours)


@contextlib.contextmanager
def nf_reads_our_prompts(nf_model, nd_model, batch):
    """NF's prompts for batch are checked against ndiv's, then NF tokenizes ndiv's, so both LLMs
    see the same tokens (a last-bit difference in a printed float changes the tokens)."""
    with ndiv.no_grad():
        x, _ = nd_model.normalize_layers(ndiv.tensor(batch["insample_y"]), "norm")
    ours = nd_model.prompts(x.numpy()[..., 0])
    real = nf_model.llm_tokenizer

    class Check:
        def __call__(self, prompts, **kw):
            for a, b in zip(prompts, ours, strict=True):
                _same_prompt(a, b, nf_model.input_size)
            return real(ours, **kw)
    nf_model.llm_tokenizer = Check()
    try:
        yield
    finally:
        nf_model.llm_tokenizer = real


def _pair(folders, config):
    which, kw = CONFIGS[config]
    kw = dict(kw, llm=folders[which])
    nf_model, nd_model = nf_ref.build("TimeLLM", **kw), TimeLLM(**kw)
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    nf_ref.load_nf_weights(nf_model, nd_model)
    return nf_model, nd_model, kw


def _batch(seed, b, kw):
    batch = nf_ref.windows_batch(np.random.default_rng(seed), b, kw["input_size"], kw["h"])
    batch["insample_y"] = batch["insample_y"] * 5 + 20    # RevIN makes the forecast follow the level
    return batch


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_neuralforecast_weights_give_the_same_forecast(folders, config):
    nf_ref.nf_models()
    nf_model, nd_model, kw = _pair(folders, config)
    assert nd_model.d_llm == nf_model.llm.config.hidden_size
    assert nd_model.word_embeddings is nd_model.llm.get_input_embeddings().weight
    batch = _batch(0, 4, kw)
    with nf_reads_our_prompts(nf_model, nd_model, batch):
        got = nf_ref.assert_same_forward(nf_model, nd_model, batch, rtol=1e-4, atol=1e-4)
    assert got.shape == (4, kw["h"], 1)


@pytest.mark.parametrize("config", ["gpt2", "llama-gqa"])
def test_one_training_step_matches_neuralforecast(folders, config):
    nf_ref.nf_models()
    import torch
    nf_model, nd_model, kw = _pair(folders, {"gpt2": "gpt2", "llama-gqa": "llama-gqa"}[config])
    for m in (nf_model, nd_model):   # the step is deterministic without dropout (NF's attention one is fixed at 0.1)
        m.train()
        for mod in m.modules():
            if type(mod).__name__ == "Dropout":
                mod.p = 0.0
    batch = _batch(1, 3, kw)
    y = np.random.default_rng(2).standard_normal((3, kw["h"], 1)).astype(np.float32) * 5 + 20
    trainable = [k for k, p in nf_model.named_parameters() if p.requires_grad]
    assert trainable and not any(k.startswith(("llm.", "word_embeddings")) for k in trainable)
    assert sorted(trainable) == sorted(k for k, p in nd_model.named_parameters() if p.requires_grad)
    nf_opt = torch.optim.Adam([p for p in nf_model.parameters() if p.requires_grad], lr=1e-3)
    nd_opt = ndiv.optim.Adam([p for p in nd_model.parameters() if p.requires_grad], lr=1e-3)
    with nf_reads_our_prompts(nf_model, nd_model, batch):
        nd_loss = nd_model.loss(y=ndiv.tensor(y), y_hat=nd_model(nf_ref.as_tensors(batch)))
        nf_loss = nf_model.loss(y=torch.tensor(y), y_hat=nf_model({k: None if v is None else torch.tensor(v)
                                                                   for k, v in batch.items()}))
    np.testing.assert_allclose(nd_loss.item(), nf_loss.item(), rtol=1e-5)
    nd_loss.backward()
    nf_loss.backward()
    nd_params, nf_params = dict(nd_model.named_parameters()), dict(nf_model.named_parameters())
    scale = max(np.abs(nf_params[k].grad.numpy()).max() for k in trainable)
    for k in trainable:   # atol on the largest gradient's scale: some are 0 but for rounding (key bias: softmax shift)
        np.testing.assert_allclose(nd_params[k].grad, nf_params[k].grad.numpy(), rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=k)
    assert all(p.grad is None for k, p in nd_params.items() if k.startswith("llm."))
    before = {k: nd_params[k].data.copy() for k in trainable}
    nd_opt.step()
    nf_opt.step()
    for k in trainable:   # Adam's first step is lr * sign(g): compared where g is above the rounding noise
        real = np.abs(nf_params[k].grad.numpy()) > 1e-4 * scale
        step = nd_params[k].data - before[k]
        np.testing.assert_allclose(nd_params[k].data[real], nf_params[k].detach().numpy()[real], rtol=1e-4,
                                   atol=1e-6, err_msg=k)
        assert np.abs(step).max() <= 1e-3 * (1 + 1e-4), k


def test_lags_match_neuralforecasts_up_to_equal_pairs():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((6, 36)).astype(np.float32)
    corr = torch.fft.irfft(torch.fft.rfft(torch.tensor(x)) * torch.conj(torch.fft.rfft(torch.tensor(x))))
    want = torch.topk(corr, 5, dim=-1).indices.numpy()
    got = calculate_lags(x, 5)
    np.testing.assert_array_equal(np.minimum(got, 36 - got) % 36, np.minimum(want, 36 - want) % 36)
    assert (got[:, 0] == 0).all()
    for row in got.tolist():                               # equal pairs (k, T - k): the smaller lag first
        for k in row:
            if 0 < k < 18 and 36 - k in row:
                assert row.index(k) + 1 == row.index(36 - k), row


def test_prompt_is_nfs_text(folders):
    model = TimeLLM(h=6, input_size=8, patch_len=4, stride=2, d_ff=8, d_model=8, n_heads=2, top_k=2,
                    llm=folders["gpt2"])
    x = np.array([[0.5, -1.0, 2.0, 0.25, 0.0, 1.0, -0.5, 3.0]], np.float32)
    (prompt,) = model.prompts(x)
    lags = calculate_lags(x, 2)[0].tolist()
    assert prompt == ("<|start_prompt|>NoneTask description: forecast the next 6 steps given the previous 8 steps "
                      "information; Input statistics: min value -1.0, max value 3.0, median value 0.25, the trend "
                      f"of input is upward, top 5 lags are : {lags}<|<end_prompt>|>")


def test_forecaster_fit_predict_save_load(folders, tmp_path):
    train, _ = nf_ref.air_passengers()
    model = TimeLLM(h=4, input_size=16, patch_len=8, stride=4, d_ff=16, d_model=8, n_heads=2, llm=folders["llama"],
                    max_steps=2, windows_batch_size=4, inference_windows_batch_size=8, enable_progress_bar=False)
    fc = ndiv.Forecaster(models=[model], freq="MS").fit(train)
    pred = np.asarray(fc.predict()["TimeLLM"], dtype=float)
    assert pred.shape == (4,) and np.isfinite(pred).all()
    assert all(p.grad is None or not p.requires_grad for p in model.llm.parameters())
    fc.save(str(tmp_path / "fc"))
    again = np.asarray(ndiv.Forecaster.load(str(tmp_path / "fc")).predict()["TimeLLM"], dtype=float)
    np.testing.assert_allclose(again, pred, rtol=1e-6)
    assert MODELS["TimeLLM"] is TimeLLM


@pytest.mark.parametrize("kw,error,match", [
    (dict(loss=MQLoss()), ValueError, "loss=MQLoss.. is not supported; TimeLLM .as NF's. takes point losses"),
    (dict(llm_tokenizer="gpt2"), ValueError, "llm_config and llm_tokenizer are deprecated"),
    (dict(d_ff=65), ValueError, "d_ff=65 exceeds the LLM's width 64"),
    (dict(d_llm=4096), ValueError, "d_llm=4096 differs from the LLM's width 64"),
    (dict(input_size=4, patch_len=16), ValueError, "input_size .4. gives no patch"),
    (dict(stride=0), ValueError, "stride must be a positive integer"),
    (dict(device="cuda"), ValueError, "device='cuda' is not supported yet"),
    (dict(llm="no/such-folder"), FileNotFoundError, "does not download from the Hugging Face hub"),
])
def test_errors_name_the_option(folders, kw, error, match):
    base = dict(h=4, input_size=16, patch_len=8, stride=4, d_ff=16, d_model=8, n_heads=2, llm=folders["gpt2"])
    with pytest.raises(error, match=match):
        TimeLLM(**{**base, **kw})


def test_model_defaults_are_neuralforecasts():
    nf = nf_ref.nf_models()
    ref = {k: p.default for k, p in inspect.signature(nf.TimeLLM.__init__).parameters.items()
           if p.default is not inspect.Parameter.empty}
    ours = {k: p.default for k, p in inspect.signature(TimeLLM).parameters.items()
            if p.default is not inspect.Parameter.empty}
    for k, v in ours.items():
        if k in ref and k not in ("loss", "valid_loss", "optimizer", "lr_scheduler", "enable_progress_bar"):
            assert v == ref[k], (k, v, ref[k])
    missing = {k for k in ref if k not in ours} - {"val_monitor", "dataloader_kwargs"}
    assert not missing, missing
