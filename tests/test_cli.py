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


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err        # one line, no traceback
    assert err.startswith("ndiv: error: ")
    return err


def test_cli_errors_print_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["forecast", "--model", "Nope"]) == 2
    assert "unknown --model 'Nope'" in _error_line(capsys)
    assert cli.main(["forecast", "--data", str(tmp_path / "missing.csv"), "--freq", "D"]) == 2
    assert "no such file" in _error_line(capsys)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,ds,y\na,1,2\n")
    assert cli.main(["forecast", "--data", str(bad), "--freq", "1"]) == 2
    assert "missing column 'unique_id'" in _error_line(capsys)
    assert cli.main(["forecast", "--data", str(bad)]) == 2
    assert "--freq is needed" in _error_line(capsys)
    assert cli.main(["cv", "--n-windows", "0"]) == 2
    assert "--n-windows must be a positive integer, got 0" in _error_line(capsys)
    short = tmp_path / "short.csv"                      # an error from the library (too short to train)
    short.write_text("unique_id,ds,y\n" + "".join(f"a,{i},{i}\n" for i in range(20)))
    assert cli.main(["forecast", "--data", str(short), "--freq", "1", "--h", "4", "--max-steps", "1"]) == 2
    assert "series 'a' has 16 rows" in _error_line(capsys)
    with pytest.raises(ValueError, match="series 'a' has 16 rows"):   # --debug: the exception itself
        cli.main(["forecast", "--data", str(short), "--freq", "1", "--h", "4", "--max-steps", "1", "--debug"])


def test_forecast_help_lists_every_option_with_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["forecast", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    parser = cli.build_parser()
    forecast = parser._subparsers._group_actions[0].choices["forecast"]
    for action in forecast._actions:
        for opt in action.option_strings:
            assert opt in text
            assert action.help, opt
    assert "examples:\n  ndiv forecast" in text and "--plot fc.png" in text


def test_seasonal_naive_uses_the_season_of_the_frequency_and_says_so(tmp_path, capsys):
    assert cli.season_length("MS") == 12 and cli.season_length("1mo") == 12 and cli.season_length("D") == 7
    assert cli.season_length("1h") == 24 and cli.season_length("W-SUN") == 52 and cli.season_length(1) == 1
    data = tmp_path / "d.csv"
    with open(data, "w") as f:
        f.write("unique_id,ds,y\n")
        for i in range(60):
            f.write(f"a,{i},{10 + 3 * np.sin(2 * np.pi * i / 7):.4f}\n")
    out = tmp_path / "o.csv"
    argv = ["forecast", "--data", str(data), "--freq", "1", "--h", "7", "--input-size", "14", "--max-steps", "5",
            "--output", str(out)]
    assert cli.main(argv + ["--season-length", "7"]) == 0
    text = capsys.readouterr().out
    assert "season length 7 (--season-length)" in text
    rows = _rows(out)
    naive = np.array([float(r["SeasonalNaive"]) for r in rows])
    y = np.array([float(r["y"]) for r in rows])
    np.testing.assert_allclose(naive, y, atol=1e-3)     # a period-7 series: one season back is exact
    assert cli.main(argv) == 0
    assert "season length 1 (freq 1 has no known season" in capsys.readouterr().out


def test_smape_is_on_the_m4_scale(capsys):
    assert cli.main(["forecast", "--max-steps", "5", "--output", "/dev/null"]) == 0
    text = capsys.readouterr().out
    assert "sMAPE as in M4: 200 |y - f| / (|y| + |f|), 0-200" in text
    line = [ln for ln in text.splitlines() if ln.startswith("SeasonalNaive ")][-1]
    from ndiv.datasets import load_air_passengers
    y = np.asarray(cli._as_dict(load_air_passengers())["y"], dtype=np.float64)
    f, y = y[-24:-12], y[-12:]                                      # 1959 as the forecast of 1960
    m4 = 200 * np.mean(np.abs(y - f) / (np.abs(y) + np.abs(f)))   # M4's formula, in (0, 200)
    assert line.split()[1:] == [f"{np.mean(np.abs(y - f)):.3f}", f"{m4:.2f}"]


def test_plot_shows_the_last_seasons_and_a_legend_outside(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot", reason="--plot needs matplotlib (pip install '.[plot]')")
    from ndiv.datasets import load_air_passengers
    data = cli._as_dict(load_air_passengers())
    train, test = cli._split(data, 12)
    table = {"unique_id": test["unique_id"], "ds": test["ds"], "y": test["y"], "M-median": test["y"],
             "M-lo-80": test["y"] - 10, "M-hi-80": test["y"] + 10, "SeasonalNaive": test["y"]}
    fig = cli.plot_forecast(plt, train, table, "M", "M-median", season=12)
    ax = fig.axes[0]
    history = ax.get_lines()[0]
    assert len(history.get_xdata()) == 36                            # three seasons, not 132 months
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1                   # right of the data, not over it
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "80% interval" in labels and "seasonal naive (m=12)" in labels
    plt.close(fig)
    out = tmp_path / "fc.png"
    assert cli.main(["forecast", "--max-steps", "5", "--level", "80", "--plot", str(out),
                     "--output", str(tmp_path / "fc.csv")]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
