"""ndiv.viz: the graph of a 2-layer MLP loss, the gradient recorder, decomposition and attention."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import ndiv
from ndiv import nn, viz


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())


def _data():
    rng = np.random.default_rng(0)
    return (ndiv.tensor(rng.standard_normal((5, 3)).astype(np.float32)),
            ndiv.tensor(rng.standard_normal((5, 1)).astype(np.float32)))


def _mlp_loss(model, x, y):
    return ((model(x) - y) ** 2).mean()


def test_graph_of_two_layer_mlp_has_exactly_its_ops_leaves_and_edges():
    ndiv.manual_seed(0)
    model, (x, y) = TwoLayer(), _data()
    g = viz.graph(_mlp_loss(model, x, y), model=model)
    assert [(n["op"], n["name"]) for n in g.nodes] == [
        ("leaf", None), ("leaf", "fc1.weight"), ("leaf", "fc1.bias"), ("Linear", None), ("Tanh", None),
        ("leaf", "fc2.weight"), ("leaf", "fc2.bias"), ("Linear", None), ("leaf", None), ("Sub", None),
        ("PowScalar", None), ("Mean", None)]
    assert g.edges == [(0, 3, 0), (1, 3, 1), (2, 3, 2), (3, 4, 0), (4, 7, 0), (5, 7, 1), (6, 7, 2),
                       (7, 9, 0), (8, 9, 1), (9, 10, 0), (10, 11, 0)]
    assert [n["shape"] for n in g.nodes] == [(5, 3), (4, 3), (4,), (5, 4), (5, 4), (1, 4), (1,), (5, 1),
                                             (5, 1), (5, 1), (5, 1), ()]
    assert [n["requires_grad"] for n in g.nodes] == [False, True, True, True, True, True, True, True, False,
                                                     True, True, True]
    assert all(n["dtype"] == "float32" and n["grad_norm"] is None for n in g.nodes)
    dot = g.to_dot()
    assert dot.count(" -> ") == 11 and 'label="fc1.weight' in dot and dot.startswith("digraph")


def test_graph_backward_gives_every_node_its_gradient_norm():
    ndiv.manual_seed(0)
    model, (x, y) = TwoLayer(), _data()
    g = viz.graph(_mlp_loss(model, x, y), model=model, backward=True)
    # the same gradients by hand, in NumPy
    w1, b1, w2, b2 = (p.data.astype(np.float64) for p in (model.fc1.weight, model.fc1.bias,
                                                          model.fc2.weight, model.fc2.bias))
    xa, ya = x.data.astype(np.float64), y.data.astype(np.float64)
    h = np.tanh(xa @ w1.T + b1)
    out = h @ w2.T + b2
    g_out = 2 * (out - ya) / out.size
    g_w2, g_b2 = g_out.T @ h, g_out.sum(0)
    g_pre = (g_out @ w2) * (1 - h ** 2)
    g_w1, g_b1 = g_pre.T @ xa, g_pre.sum(0)
    norms = {n["name"]: n["grad_norm"] for n in g.nodes if n["name"]}
    for name, ref in (("fc1.weight", g_w1), ("fc1.bias", g_b1), ("fc2.weight", g_w2), ("fc2.bias", g_b2)):
        assert norms[name] == pytest.approx(np.linalg.norm(ref), rel=1e-5)
    np.testing.assert_allclose(model.fc1.weight.grad, g_w1, rtol=1e-5, atol=1e-7)
    assert g.nodes[-1]["grad_norm"] == pytest.approx(1.0)                       # d loss / d loss
    assert g.nodes[7]["grad_norm"] == pytest.approx(np.linalg.norm(g_out), rel=1e-5)   # fc2's output
    assert g.nodes[0]["grad_norm"] is None                                      # x needs no gradient


def test_graph_after_a_plain_backward_says_the_graph_was_freed():
    model, (x, y) = TwoLayer(), _data()
    loss = _mlp_loss(model, x, y)
    loss.backward()
    with pytest.raises(ValueError, match="freed by backward"):
        viz.graph(loss)


def test_record_modules_groups_ops_by_module_and_leaves_no_hook():
    model, (x, y) = TwoLayer(), _data()
    with viz.record_modules(model):
        loss = _mlp_loss(model, x, y)
    assert not any(m._has_hooks for m in model.modules())
    g = viz.graph(loss, model=model)
    assert [n["module"] for n in g.nodes if n["op"] != "leaf"] == ["fc1", None, "fc2", None, None, None]
    c = g.collapse()      # the input x feeds only fc1: a constant inside a module, left out
    assert [(n["op"], n["name"], n.get("n_ops")) for n in c.nodes] == [
        ("module", "fc1", 1), ("Tanh", None, None), ("module", "fc2", 1), ("leaf", None, None),
        ("Sub", None, None), ("PowScalar", None, None), ("Mean", None, None)]
    assert [e[:2] for e in c.edges] == [(0, 1), (1, 2), (2, 4), (3, 4), (4, 5), (5, 6)]
    # without record_modules no op has a module
    assert all(n["module"] is None for n in viz.graph(_mlp_loss(model, x, y)).nodes)


def test_recorder_off_attaches_nothing_and_on_matches_manual_norms():
    ndiv.manual_seed(0)
    model, (x, y) = TwoLayer(), _data()
    params = dict(model.named_parameters())
    assert all(not p._hooks for p in params.values())
    opt = ndiv.optim.SGD(model.parameters(), lr=0.1)
    rec = viz.GradientRecorder(model, every=1)
    assert rec.attached and all(len(p._hooks) == 1 for p in params.values())
    grads, weights = [], []
    for _ in range(3):
        weights.append({k: p.data.copy() for k, p in params.items()})
        opt.zero_grad()
        _mlp_loss(model, x, y).backward()
        grads.append({k: p.grad.copy() for k, p in params.items()})
        opt.step()
    rec.remove()
    assert not rec.attached and all(not p._hooks for p in params.values())
    per_param = rec.grad_norms(per_layer=False)
    per_layer = rec.grad_norms()
    assert list(per_layer) == ["fc1", "fc2"]
    for t in range(3):
        for k in params:
            assert per_param[k][t] == pytest.approx(np.linalg.norm(grads[t][k]), rel=1e-6)
        ref = np.sqrt(np.linalg.norm(grads[t]["fc1.weight"]) ** 2 + np.linalg.norm(grads[t]["fc1.bias"]) ** 2)
        assert per_layer["fc1"][t] == pytest.approx(ref, rel=1e-6)
    ratios = rec.update_ratios(per_layer=False)
    for t in range(1, 3):                 # the update made by the step after backward t - 1
        for k in params:
            w0, w1 = weights[t - 1][k], weights[t][k]
            assert ratios[k][t - 1] == pytest.approx(np.linalg.norm(w1 - w0) / np.linalg.norm(w0), rel=1e-5)
    _mlp_loss(model, x, y).backward()     # removed: nothing more is recorded
    assert len(rec.steps) == 3


def test_recorder_during_a_fit_counts_every_step():
    from ndiv.datasets import load_air_passengers
    from ndiv.models import NHITS
    model = NHITS(h=6, input_size=12, mlp_units=[[8, 8]], max_steps=4, random_seed=1)
    fc = ndiv.Forecaster([model], freq="MS")
    with viz.GradientRecorder(model, every=1) as rec:
        fc.fit(load_air_passengers())
    assert len(rec.steps) == 4 and len(rec.updates) == 3
    blocks = rec.grad_norms(depth=2)
    assert list(blocks) == ["blocks.0", "blocks.1", "blocks.2"]
    assert all(np.isfinite(v).all() and (v > 0).all() for v in blocks.values())
    assert all(not p._hooks for p in model.parameters())


def test_nhits_decomposition_adds_up_to_the_forecast():
    from ndiv.datasets import load_air_passengers
    from ndiv.models import NHITS
    model = NHITS(h=6, input_size=12, mlp_units=[[8, 8]], max_steps=3, scaler_type="standard")
    fc = ndiv.Forecaster([model], freq="MS").fit(load_air_passengers())
    d = viz.decomposition(fc)
    assert d["stacks"].shape == (3, 1, 6, 1) and d["level"].shape == (1, 6, 1)
    pred = np.asarray(fc.predict()["NHITS"], dtype=np.float64)
    np.testing.assert_allclose(d["forecast"][0, :, 0], pred, rtol=1e-4)
    assert d["level"][0, 0, 0] == pytest.approx(432.0, rel=1e-5)     # AirPassengers' last value


def test_decomposition_of_a_model_without_stacks_says_which_have_them():
    from ndiv.datasets import load_air_passengers
    from ndiv.models import MLP
    fc = ndiv.Forecaster([MLP(h=6, input_size=12, max_steps=1, hidden_size=8, num_layers=1)], freq="MS")
    fc.fit(load_air_passengers())
    with pytest.raises(ValueError, match="has no decomposition.*NHITS"):
        viz.decomposition(fc)


def test_patchtst_attention_rows_are_distributions():
    from ndiv.datasets import load_air_passengers
    from ndiv.models import PatchTST
    model = PatchTST(h=6, input_size=24, max_steps=1, hidden_size=8, n_heads=2, encoder_layers=2,
                     linear_hidden_size=8)
    fc = ndiv.Forecaster([model], freq="MS").fit(load_air_passengers())
    att = viz.attention(fc)
    assert len(att["weights"]) == 2
    w = att["weights"][0]
    assert w.shape[:2] == (1, 2) and w.shape[2] == w.shape[3]
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)


def test_pictures_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    model, (x, y) = TwoLayer(), _data()
    with viz.record_modules(model):
        loss = _mlp_loss(model, x, y)
    viz.draw_graph(loss, tmp_path / "g.png", model=model, collapse_modules=True, engine="matplotlib")
    rec = viz.GradientRecorder(model)
    for _ in range(3):
        model.zero_grad()
        _mlp_loss(model, x, y).backward()
    viz.plot_gradient_flow(rec, tmp_path / "flow.png")
    for name in ("g.png", "flow.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_pictures_without_matplotlib_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    model, (x, y) = TwoLayer(), _data()
    with pytest.raises(ImportError, match=r'pip install "ndiv\[plot\]"'):
        viz.draw_graph(_mlp_loss(model, x, y), engine="matplotlib")


def test_cli_forecast_explain_writes_gradient_flow_and_decomposition(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from ndiv import cli
    plot = tmp_path / "fc.png"
    assert cli.main(["forecast", "--model", "NHITS", "--max-steps", "3", "--output", str(tmp_path / "fc.csv"),
                     "--plot", str(plot), "--explain"]) == 0
    for name in ("fc.png", "fc_gradients.png", "fc_decomposition.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    assert cli.main(["forecast", "--model", "MLP", "--max-steps", "2", "--output", str(tmp_path / "m.csv"),
                     "--plot", str(tmp_path / "m.png"), "--explain"]) == 0
    assert (tmp_path / "m_gradients.png").exists() and not list(tmp_path.glob("m_decomposition*"))
    assert "MLP has no decomposition or attention map" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="pass --plot PATH.png"):
        cli.main(["forecast", "--max-steps", "2", "--output", str(tmp_path / "x.csv"), "--explain"])


def test_graphviz_engine_draws_the_same_nodes_and_edges(tmp_path):
    pytest.importorskip("graphviz")
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("the dot program is not installed (apt install graphviz)")
    model, (x, y) = TwoLayer(), _data()
    with viz.record_modules(model):
        loss = _mlp_loss(model, x, y)
    src = viz.draw_graph(loss, tmp_path / "g.png", model=model, engine="graphviz")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert src.source == viz.graph(loss, model=model).to_dot()
    assert src.source.count(" -> ") == 11 and 'label="fc1.weight' in src.source
    # dot lays out every node: its plain output lists the 12 nodes and the 11 edges
    plain = src.pipe(format="plain").decode()
    assert sum(line.startswith("node ") for line in plain.splitlines()) == 12
    assert sum(line.startswith("edge ") for line in plain.splitlines()) == 11
    collapsed = viz.draw_graph(loss, tmp_path / "c.png", model=model, collapse_modules=True, engine="graphviz")
    assert "fc1" in collapsed.source and "fc2" in collapsed.source
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_graphviz_engine_without_graphviz_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    model, (x, y) = TwoLayer(), _data()
    with pytest.raises(ImportError, match=r'pip install "ndiv\[graph\]"'):
        viz.draw_graph(_mlp_loss(model, x, y), engine="graphviz")


def test_recorder_every_k_records_those_backwards_with_the_update_since_the_one_before():
    ndiv.manual_seed(0)
    model, (x, y) = TwoLayer(), _data()
    params = dict(model.named_parameters())
    opt = ndiv.optim.Adam(model.parameters(), lr=0.05)
    grads, weights = [], []
    with viz.GradientRecorder(model, every=3) as rec:
        for _ in range(8):
            weights.append({k: p.data.copy() for k, p in params.items()})
            opt.zero_grad()
            _mlp_loss(model, x, y).backward()
            grads.append({k: p.grad.copy() for k, p in params.items()})
            opt.step()
    assert rec.step_index == [0, 3, 6] and len(rec.updates) == 2
    norms, ratios = rec.grad_norms(per_layer=False), rec.update_ratios(per_layer=False)
    for i, t in enumerate(rec.step_index):
        for k in params:
            assert norms[k][i] == pytest.approx(np.linalg.norm(grads[t][k]), rel=1e-6)
            if t:      # the update of the step between backward t - 1 and backward t
                w0, w1 = weights[t - 1][k], weights[t][k]
                assert ratios[k][i - 1] == pytest.approx(np.linalg.norm(w1 - w0) / np.linalg.norm(w0), rel=1e-5)
    with pytest.raises(ValueError, match="every must be a positive int"):
        viz.GradientRecorder(model, every=0)


@pytest.mark.parametrize("kernels", ["reference", "cpu"])
def test_grad_update_stats_kernel_equals_numpy_and_keeps_nan_and_inf(kernels):
    import importlib
    k = importlib.import_module(f"ndiv.kernels.{kernels}")
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        g, w, last = (rng.standard_normal((7, 5)).astype(dtype) for _ in range(3))
        keep = last.copy()
        gg, dd, ll = k.grad_update_stats(g, w, last)
        g64, w64, l64 = (a.astype(np.float64) for a in (g, w, keep))
        assert gg == pytest.approx((g64 ** 2).sum(), rel=1e-12)
        assert dd == pytest.approx(((w64 - l64) ** 2).sum(), rel=1e-12)
        assert ll == pytest.approx((l64 ** 2).sum(), rel=1e-12)
        np.testing.assert_array_equal(last, w)          # the copy now holds the weights
    big = np.full(4, 3e38, np.float32)                  # float32 squares overflow; float64 sums do not
    assert math.isfinite(k.grad_update_stats(big, big, big.copy())[0])
    g = np.array([1.0, np.nan, 2.0]); w = np.array([np.inf, 0.0, 1.0])
    gg, dd, ll = k.grad_update_stats(g, w, np.zeros(3))
    assert math.isnan(gg) and dd == math.inf and ll == 0.0
    with pytest.raises(ValueError, match="sizes differ"):
        k.grad_update_stats(np.zeros(3), np.zeros(3), np.zeros(4))
