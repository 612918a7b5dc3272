"""Every python code block of every docs/*.md runs as written, in order, one namespace per file.

NDIV_DOCS_QUICK=1 makes the lessons train for a few steps; NDIV_DOCS_IMG sends their pictures to
a temporary folder (so the test does not rewrite docs/img), where the test checks they appear.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
IMAGE = re.compile(r"!\[[^\]]*\]\(img/([^)]+)\)")


def code_blocks(text: str) -> list:
    return BLOCK.findall(text)


def test_the_lessons_are_there():
    assert [p.name for p in DOCS] == ["01_the_tape.md", "02_a_new_op.md", "03_fused_kernels.md",
                                      "04_nhits_gradients.md"]
    assert all(code_blocks(p.read_text()) for p in DOCS)


@pytest.mark.parametrize("path", DOCS, ids=[p.stem for p in DOCS])
def test_lesson_runs_as_written(path, tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if "hypothesis" in path.read_text():
        pytest.importorskip("hypothesis")
    monkeypatch.setenv("NDIV_DOCS_QUICK", "1")
    monkeypatch.setenv("NDIV_DOCS_IMG", str(tmp_path))
    monkeypatch.chdir(ROOT)
    text = path.read_text()
    namespace = {"__name__": f"docs_{path.stem}"}
    try:
        for i, block in enumerate(code_blocks(text)):
            code = compile(block, f"{path.name}[block {i + 1}]", "exec")
            exec(code, namespace)
    finally:
        plt.close("all")
    for name in IMAGE.findall(text):            # every picture the lesson shows, it has just drawn
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
