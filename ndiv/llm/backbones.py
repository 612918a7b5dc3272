"""Decoder-only LLM backbones on ndiv's tensor, under Hugging Face's module and parameter names.

`GPT2Model` and `LlamaModel` mirror transformers' classes of the same names (the bare decoder,
no LM head), so an HF state_dict ("wte.weight", "h.0.attn.c_attn.weight", ... or
"embed_tokens.weight", "layers.0.self_attn.q_proj.weight", ...) loads with strict=True. Both take
`inputs_embeds` [B, T, D] (what TimeLLM feeds them) or `input_ids` [B, T] and return the last
hidden state [B, T, D]. Attention is causal with no padding mask (as NF's TimeLLM calls them) and
runs through F.scaled_dot_product_attention (the fused flash kernel at these lengths); every
matmul is a BLAS GEMM. The weights are built frozen (requires_grad=False): the gradient still
flows through them to the inputs.
"""
from __future__ import annotations

import numpy as np

import ndiv
from ndiv import nn
from ndiv.nn import functional as F


def _frozen(*shape) -> nn.Parameter:
    return nn.Parameter(np.zeros(shape, np.float32), requires_grad=False)


def _heads(x, n: int):
    """[B, T, n * d] -> [B, n, T, d]."""
    b, t, _ = x.shape
    return x.reshape(b, t, n, -1).swapaxes(1, 2)


def _merge_heads(x):
    """[B, n, T, d] -> [B, T, n * d]."""
    b, n, t, d = x.shape
    return x.swapaxes(1, 2).reshape(b, t, n * d)


# -- GPT-2 ----------------------------------------------------------------------------------------

class Conv1D(nn.Module):
    """GPT-2's linear layer with the weight stored [in, out]: y = x @ weight + bias."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf = nf
        self.weight = _frozen(nx, nf)
        self.bias = _frozen(nf)

    def forward(self, x):
        return x @ self.weight + self.bias


class GPT2Attention(nn.Module):
    """Causal multi-head self-attention with fused q, k, v (c_attn) and an output map (c_proj)."""

    def __init__(self, cfg: dict):
        super().__init__()
        d = cfg["n_embd"]
        self.n_head, self.attn_pdrop = cfg["n_head"], cfg.get("attn_pdrop", 0.0)
        self.c_attn = Conv1D(3 * d, d)
        self.c_proj = Conv1D(d, d)
        self.resid_dropout = nn.Dropout(cfg.get("resid_pdrop", 0.0))

    def forward(self, x):
        """x [B, T, D] -> [B, T, D]."""
        d = x.shape[-1]
        qkv = self.c_attn(x)
        q, k, v = (_heads(qkv[..., i * d:(i + 1) * d], self.n_head) for i in range(3))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.attn_pdrop if self.training else 0.0)
        return self.resid_dropout(self.c_proj(_merge_heads(y)))


class GPT2MLP(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        d = cfg["n_embd"]
        inner = cfg.get("n_inner") or 4 * d
        self.c_fc = Conv1D(inner, d)
        self.c_proj = Conv1D(d, inner)
        self.dropout = nn.Dropout(cfg.get("resid_pdrop", 0.0))

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class GPT2Block(nn.Module):
    """Pre-norm block: x + attn(ln_1(x)), then + mlp(ln_2(.))."""

    def __init__(self, cfg: dict):
        super().__init__()
        d, eps = cfg["n_embd"], cfg.get("layer_norm_epsilon", 1e-5)
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.attn = GPT2Attention(cfg)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.mlp = GPT2MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    """GPT-2 decoder (transformers' GPT2Model): token + learned position embeddings, n_layer
    blocks, a final LayerNorm. Only GELU-tanh ('gelu_new'), the model's own activation, is built.

    cfg: the HF config.json dict (n_embd, n_head, n_layer, n_positions, vocab_size, ...).
    forward(inputs_embeds [B, T, D] or input_ids [B, T]) -> last hidden state [B, T, D].
    """

    def __init__(self, cfg: dict):
        super().__init__()
        act = cfg.get("activation_function", "gelu_new")
        if act not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"GPT2Model: activation_function={act!r} is not supported; "
                             "ndiv builds GPT-2's own GELU-tanh ('gelu_new')")
        self.config = dict(cfg)
        d = cfg["n_embd"]
        self.wte = nn.Embedding(cfg["vocab_size"], d)
        self.wpe = nn.Embedding(cfg["n_positions"], d)
        self.drop = nn.Dropout(cfg.get("embd_pdrop", 0.0))
        self.h = nn.ModuleList([GPT2Block(cfg) for _ in range(cfg["n_layer"])])
        self.ln_f = nn.LayerNorm(d, eps=cfg.get("layer_norm_epsilon", 1e-5))
        self.requires_grad_(False)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.wte

    def forward(self, input_ids=None, inputs_embeds=None):
        x = self.wte(input_ids) if inputs_embeds is None else inputs_embeds
        t = x.shape[1]
        if t > self.wpe.weight.shape[0]:
            raise ValueError(f"GPT2Model: {t} tokens exceed n_positions={self.wpe.weight.shape[0]}")
        x = self.drop(x + self.wpe(np.arange(t)))
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


# -- Llama ----------------------------------------------------------------------------------------

class LlamaRMSNorm(nn.Module):
    """y = weight * x / sqrt(mean(x^2) + eps) over the last dim."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(np.ones(d, np.float32), requires_grad=False)

    def forward(self, x):
        return self.weight * (x / ((x * x).mean(axis=-1, keepdims=True) + self.eps).sqrt())


def rope_cos_sin(t: int, head_dim: int, theta: float, dtype=np.float32):
    """HF's default RoPE tables [T, head_dim]: angles pos / theta^(2i/d), the half repeated."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))
    freqs = np.arange(t, dtype=np.float32)[:, None] * inv_freq[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb).astype(dtype), np.sin(emb).astype(dtype)


def apply_rope(x, cos, sin):
    """x [B, H, T, d] rotated in HF's rotate_half layout (first half paired with the second)."""
    half = x.shape[-1] // 2
    rotated = ndiv.cat([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


class LlamaAttention(nn.Module):
    """Causal grouped-query attention: n_heads queries share n_kv_heads keys/values, RoPE on q, k."""

    def __init__(self, cfg: dict):
        super().__init__()
        d = cfg["hidden_size"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads") or self.n_heads
        self.head_dim = cfg.get("head_dim") or d // self.n_heads
        bias = bool(cfg.get("attention_bias", False))
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=bias)
        self.attention_dropout = cfg.get("attention_dropout", 0.0)

    def forward(self, x, cos, sin):
        q = apply_rope(_heads(self.q_proj(x), self.n_heads), cos, sin)
        k = apply_rope(_heads(self.k_proj(x), self.n_kv), cos, sin)
        v = _heads(self.v_proj(x), self.n_kv)
        if self.n_kv != self.n_heads:   # HF's repeat_kv: key/value head j serves queries j*g .. j*g+g-1
            g = self.n_heads // self.n_kv
            b, _, t, hd = k.shape
            k = k.unsqueeze(2).expand(b, self.n_kv, g, t, hd).reshape(b, self.n_heads, t, hd)
            v = v.unsqueeze(2).expand(b, self.n_kv, g, t, hd).reshape(b, self.n_heads, t, hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.attention_dropout if self.training else 0.0)
        return self.o_proj(_merge_heads(y))


class LlamaMLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: dict):
        super().__init__()
        d, inner, bias = cfg["hidden_size"], cfg["intermediate_size"], bool(cfg.get("mlp_bias", False))
        act = cfg.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"LlamaModel: hidden_act={act!r} is not supported; ndiv builds Llama's SwiGLU ('silu')")
        self.gate_proj = nn.Linear(d, inner, bias=bias)
        self.up_proj = nn.Linear(d, inner, bias=bias)
        self.down_proj = nn.Linear(inner, d, bias=bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        d, eps = cfg["hidden_size"], cfg.get("rms_norm_eps", 1e-6)
        self.self_attn = LlamaAttention(cfg)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = LlamaRMSNorm(d, eps)
        self.post_attention_layernorm = LlamaRMSNorm(d, eps)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


def rope_theta(cfg: dict) -> float:
    """rope_theta from an HF config (transformers >= 5 nests it under rope_parameters)."""
    params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    kind = params.get("rope_type", params.get("type", "default"))
    if kind != "default":
        raise ValueError(f"LlamaModel: rope_type={kind!r} is not supported; ndiv builds the default RoPE")
    return float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))


class LlamaModel(nn.Module):
    """Llama decoder (transformers' LlamaModel): token embeddings, RMSNorm pre-norm layers with
    RoPE grouped-query attention and SwiGLU, a final RMSNorm.

    cfg: the HF config.json dict (hidden_size, num_attention_heads, num_key_value_heads,
    intermediate_size, num_hidden_layers, rms_norm_eps, rope_theta, vocab_size, ...).
    forward(inputs_embeds [B, T, D] or input_ids [B, T]) -> last hidden state [B, T, D].
    """

    def __init__(self, cfg: dict):
        super().__init__()
        self.config = dict(cfg)
        d = cfg["hidden_size"]
        self.theta = rope_theta(cfg)
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], d)
        self.layers = nn.ModuleList([LlamaDecoderLayer(cfg) for _ in range(cfg["num_hidden_layers"])])
        self.norm = LlamaRMSNorm(d, cfg.get("rms_norm_eps", 1e-6))
        self.requires_grad_(False)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def forward(self, input_ids=None, inputs_embeds=None):
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        head_dim = self.layers[0].self_attn.head_dim if len(self.layers) else 2
        cos, sin = rope_cos_sin(x.shape[1], head_dim, self.theta, x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x)


BACKBONES = {"gpt2": GPT2Model, "llama": LlamaModel}


def build_backbone(cfg: dict) -> nn.Module:
    """The backbone for an HF config dict (model_type 'gpt2' or 'llama'), weights zero, frozen."""
    kind = cfg.get("model_type")
    if kind not in BACKBONES:
        raise ValueError(f"ndiv.llm: model_type={kind!r} is not supported; ndiv builds {sorted(BACKBONES)}")
    return BACKBONES[kind](cfg)


__all__ = ["GPT2Model", "LlamaModel", "build_backbone", "rope_cos_sin", "apply_rope"]
