"""The README runs: every ```python block is executed (in a temporary folder), so the examples
cannot rot; a block that needs an optional package skips and names it. And CI runs the README's
two commands, verbatim, before anything else."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
OPTIONAL = {"pandas", "matplotlib", "torch", "neuralforecast", "polars", "asv", "cupy", "optuna", "dask",
            "distributed", "ray"}


def blocks(lang: str) -> list[tuple[int, str]]:
    """(first line number, code) of every ```lang block of the README."""
    text = README.read_text()
    return [(text[:m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)]


PYTHON = blocks("python")


def test_the_readme_has_python_examples():
    assert len(PYTHON) >= 3


@pytest.mark.parametrize("line,code", PYTHON, ids=[f"README.md:{n}" for n, _ in PYTHON])
def test_readme_python_block_runs(line, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                     # blocks may write files (save)
    # the examples as written, with fewer training steps: the suite checks that they run, not
    # how well the models fit (300 steps x 4 trainings would cost minutes on 2 cores)
    code = re.sub(r"max_steps=\d+", "max_steps=10", code)
    if "../shared/" in code:                        # the README's paths are relative to the repository
        shared = ROOT.parent / "shared"
        if not (shared / "data").is_dir():
            pytest.skip(f"README.md:{line} reads ../shared/data, which is not beside the repository")
        code = code.replace("../shared/", f"{shared}/")
    try:
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"README.md:{line} needs the optional package {e.name} (not installed)")
        raise
    except ImportError as e:                        # ndiv's own message for a missing extra
        if 'pip install "ndiv[' in str(e):
            pytest.skip(f"README.md:{line}: {e}")
        raise


def test_ci_runs_the_readme_commands_verbatim_first():
    commands = [code.strip() for _, code in blocks("bash")[:2]]
    assert commands == ['pip install . && ndiv forecast', 'pip install ".[test]" && python -m pytest']
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.strip().startswith("#")]
    runs = [i for i, ln in enumerate(ci) if ln in commands or ln.endswith(f"&& {commands[0]}")
            or ln.endswith(f"&& {commands[1]}")]
    assert len(runs) == 2, "the README's two commands must appear verbatim in .ci/run"
    before = ci[:runs[0]]
    assert not any("pip install" in ln and "pip install --upgrade pip" not in ln for ln in before), before
