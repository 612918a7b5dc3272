"""The `ndiv` command: forecast (bundled data and a CSV), cv, models, and its errors."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from ndiv import cli


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_forecast_with_no_data_uses_bundled_air_passengers(tmp_path, capsys):
    out = tmp_path / "fc.csv"
    assert cli.main(["forecast", "--max-steps", "150", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SeasonalNaive" in text and "MAE" in text
    rows = _rows(out)
    assert len(rows) == 12 and set(rows[0]) == {"unique_id", "ds", "y", "MLP", "SeasonalNaive"}
    y = np.array([float(r["y"]) for r in rows])
    mlp = np.array([float(r["MLP"]) for r in rows])
    naive = np.array([float(r["SeasonalNaive"]) for r in rows])
    assert np.mean(np.abs(y - mlp)) < np.mean(np.abs(y - naive))


def test_forecast_csv_with_levels(tmp_path):
    data = tmp_path / "d.csv"
    t = np.arange(80)
    with open(data, "w") as f:
        f.write("unique_id,ds,y\n")
        for u, off in (("a", 0), ("b", 5)):
            for i in t:
                f.write(f"{u},{i},{off + 10 + 3 * np.sin(2 * np.pi * i / 7):.4f}\n")
    out = tmp_path / "o.csv"
    cli.main(["forecast", "--data", str(data), "--freq", "1", "--h", "7", "--input-size", "14",
              "--max-steps", "30", "--level", "80", "--output", str(out)])
    rows = _rows(out)
    assert len(rows) == 14 and {"MLP-median", "MLP-lo-80", "MLP-hi-80"} <= set(rows[0])


def test_cv_and_models(tmp_path, capsys):
    out = tmp_path / "cv.csv"
    cli.main(["cv", "--max-steps", "10", "--n-windows", "2", "--output", str(out)])
    rows = _rows(out)
    assert len(rows) == 24 and len({r["cutoff"] for r in rows}) == 2
    cli.main(["models"])
    assert "MLP" in capsys.readouterr().out


def test_cli_errors(tmp_path):
    with pytest.raises(SystemExit, match="unknown --model 'Nope'"):
        cli.main(["forecast", "--model", "Nope"])
    with pytest.raises(SystemExit, match="no such file"):
        cli.main(["forecast", "--data", str(tmp_path / "missing.csv"), "--freq", "D"])
    bad = tmp_path / "bad.csv"
    bad.write_text("id,ds,y\na,1,2\n")
    with pytest.raises(SystemExit, match="missing column 'unique_id'"):
        cli.main(["forecast", "--data", str(bad), "--freq", "1"])
    with pytest.raises(SystemExit, match="--freq is needed"):
        cli.main(["forecast", "--data", str(bad)])
