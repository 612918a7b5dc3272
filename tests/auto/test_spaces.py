"""The Auto* table: an Auto class for every ndiv model that NeuralForecast has one for, with NF's
default search space (keys and ranges read from NF's auto.py source, without importing Ray),
and ndiv importable without optuna / dask / ray."""
from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import os
import re
import subprocess
import sys

import pytest

import ndiv.auto as auto
from ndiv.auto import spaces
from ndiv.models import MODELS


def _nf_auto_source() -> str:
    spec = importlib.util.find_spec("neuralforecast")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("neuralforecast is not installed (its auto.py is the reference)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "auto.py")
    with open(path) as f:
        return f.read()


class _Tune:
    """NF's `tune.*` calls, evaluated to ndiv's space objects."""
    choice = staticmethod(spaces.choice)
    randint = staticmethod(spaces.randint)
    loguniform = staticmethod(spaces.loguniform)
    uniform = staticmethod(spaces.uniform)

    @staticmethod
    def quniform(lower, upper, q):
        return spaces.quniform(lower, upper, q)


@functools.lru_cache(maxsize=1)
def _nf_spaces(source: str) -> dict:
    """{model: (default_config, get_default_config source)} of every NF Auto class."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Auto"):
            cfg, getter = None, ""
            for item in node.body:
                if isinstance(item, ast.Assign) and getattr(item.targets[0], "id", "") == "default_config":
                    cfg = eval(compile(ast.Expression(item.value), "auto.py", "eval"), {"tune": _Tune})
                if isinstance(item, ast.FunctionDef) and item.name == "get_default_config":
                    getter = ast.get_source_segment(source, item)
            if cfg is not None:
                out[node.name[4:]] = (cfg, getter)
    return out


def test_every_model_with_an_nf_auto_has_an_auto_class():
    nf = set(re.findall(r"^class Auto(\w+)\(BaseAuto\)", _nf_auto_source(), re.M))
    missing = sorted(n for n in MODELS if n in nf and f"Auto{n}" not in auto.AUTO_MODELS)
    assert not missing, f"add a row to ndiv/auto/spaces.py SPACES for {missing} (NF's default_config)"
    for name in auto.AUTO_MODELS:
        assert auto.AUTO_MODELS[name].cls_model is MODELS[name[4:]]
        assert getattr(auto, name) is auto.AUTO_MODELS[name]


@pytest.mark.parametrize("name", sorted(spaces.SPACES))
def test_space_matches_nf_default_config(name):
    nf = _nf_spaces(_nf_auto_source())
    if name not in nf:
        pytest.skip(f"NeuralForecast has no Auto{name}")
    cfg, getter = nf[name]
    ours = dict(spaces.SPACES[name])
    h = 7
    expected = {k: v for k, v in cfg.items() if k not in ("h", "loss", "n_series", "input_size_multiplier",
                                                          "inference_input_size_multiplier")}
    expected["input_size"] = spaces.hmult(cfg["input_size_multiplier"])
    if "inference_input_size_multiplier" in cfg:
        expected["inference_input_size"] = spaces.hmult(cfg["inference_input_size_multiplier"])
    if 'config["step_size"]' in getter:
        expected["step_size"] = spaces.choice([1, "h"])
    assert ours == expected
    # drawn values stay inside NF's choices (h substituted)
    assert spaces.candidates(ours, "input_size", h) == [h * m for m in cfg["input_size_multiplier"]]


def test_signature_is_nf_names():
    params = list(inspect.signature(auto.AutoNHITS).parameters)
    assert params[:12] == ["h", "loss", "valid_loss", "config", "search_alg", "num_samples", "cpus", "gpus",
                           "refit_with_val", "verbose", "alias", "backend"]


def test_config_errors_name_the_argument():
    with pytest.raises(ValueError, match="pass h="):
        auto.AutoMLP(h=12, config={"h": 12, "input_size": 24})
    with pytest.raises(TypeError, match="config must be a dict or a callable"):
        auto.AutoMLP(h=12, config=3)
    with pytest.raises(ValueError, match="num_samples"):
        auto.AutoMLP(h=12, num_samples=0)
    with pytest.raises(ValueError, match="backend must be"):
        auto.get_backend("nowhere")


def test_ndiv_imports_without_the_extras_and_names_them_when_used():
    code = ("import sys\n"
            "for m in ('optuna', 'dask', 'distributed', 'ray'): sys.modules[m] = None\n"
            "import ndiv, ndiv.auto\n"
            "from ndiv.auto import AutoMLP\n"
            "from ndiv.data import TimeSeriesDataset\n"
            "m = AutoMLP(h=2, config={'input_size': 4, 'max_steps': 1})\n"
            "try:\n    m.fit_dataset(None)\nexcept ImportError as e:\n    print(e)\n"
            "try:\n    ndiv.auto.get_backend('dask')\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    assert 'pip install "ndiv[auto]"' in out.stdout and 'pip install "ndiv[dask]"' in out.stdout


@pytest.mark.parametrize("name", sorted(auto.AUTO_MODELS))
def test_default_space_builds_its_model(name):
    optuna = pytest.importorskip("optuna")
    model = auto.AUTO_MODELS[name](h=12, n_series=3)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for _ in range(3):   # every drawn configuration is accepted by the model (keys and values)
        config = model._draw(study.ask())
        assert config["h"] == 12 and set(config) - {"h", "loss", "valid_loss", "n_series"} == set(model.default_config)
        model.cls_model(**config)
