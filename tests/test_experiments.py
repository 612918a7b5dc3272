"""experiments/: each benchmark script's --quick mode end to end (skipped without the shared
data), and the competition metrics (sMAPE, MASE, OWA, Naive2) on tiny series worked by hand."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import _common as C  # noqa: E402


def _have_data() -> bool:
    try:
        C.data_root()
        return True
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("script,table,extra", [("long_horizon.py", "long_horizon_quick", []),
                                                ("m4.py", "m4_quick", []), ("tourism.py", "tourism_quick", []),
                                                ("tourism.py", "tourism_quick", ["--sampler", "nbeats"])])
def test_quick_mode_runs_and_resumes(script, table, extra, tmp_path):
    if not _have_data():
        pytest.skip("no shared data (/work/shared/data or ../shared/data)")
    pytest.importorskip("pandas")                       # the scripts read the CSV files with pandas
    cmd = [sys.executable, str(ROOT / "experiments" / script), "--quick", "--out", str(tmp_path), *extra]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads((tmp_path / f"{table}.json").read_text())["rows"]
    assert rows and (tmp_path / f"{table}.csv").exists()
    trained = [r for r in rows if r["model"] not in ("Naive2", "SNaive")]   # the baselines are not trained
    assert trained, "no model row was trained"
    for r in rows:
        assert r["quick"] is True and r["versions"]["numpy"] == np.__version__
        for k in ("mse", "mae", "smape", "mase", "owa", "mape"):
            if k in r:
                assert np.isfinite(r[k]) and r[k] >= 0
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("have ") == len(trained)          # resumed: nothing retrained
    assert json.loads((tmp_path / f"{table}.json").read_text())["rows"] == rows
    report = subprocess.run([sys.executable, str(ROOT / "experiments" / "report.py"), "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert report.returncode == 0, report.stderr[-3000:]
    assert all(f"| {r['model']} |" in report.stdout for r in trained)     # every trained row is in a table


def test_smape_mase_owa_by_hand():
    y, f = np.array([10.0, 20.0]), np.array([12.0, 15.0])
    assert C.smape_m4(y, f) == pytest.approx(np.mean([200 * 2 / 22, 200 * 5 / 35]))
    assert C.smape_m4([0.0], [0.0]) == 0.0
    train = np.array([1.0, 2.0, 4.0, 3.0])                     # |diffs| with m=1: 1, 2, 1 -> 4/3
    assert C.mase_m4(train, y, f, 1) == pytest.approx(3.5 / (4 / 3))
    train2 = np.array([1.0, 5.0, 2.0, 7.0])                    # m=2: |2-1|, |7-5| -> 1.5
    assert C.mase_m4(train2, y, f, 2) == pytest.approx(3.5 / 1.5)
    assert C.owa({"smape": 10.0, "mase": 1.0}, {"smape": 20.0, "mase": 0.5}) == pytest.approx(0.5 * (0.5 + 2.0))
    with pytest.raises(ValueError, match="m=4"):
        C.mase_m4(train, y, f, 4)
    assert C.mape_pct([0.0, 10.0], [5.0, 11.0]) == pytest.approx(10.0)


def test_acf_and_seasonality_test():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    d = x - 2.5
    assert C.acf(x, 1) == pytest.approx(np.sum(d[:-1] * d[1:]) / np.sum(d * d))
    season = np.tile([1.0, 3.0, 2.0, 6.0], 6)                   # 24 points, period 4
    assert C.seasonality_test(season, 4)
    assert not C.seasonality_test(season[:11], 4)               # fewer than 3 m points
    assert not C.seasonality_test(season, 1)                    # m = 1 is never seasonal


def test_seasonal_indices_of_a_pure_multiplicative_series():
    fig = np.array([0.5, 1.5, 1.0, 1.0])                        # mean 1
    x = 10.0 * np.tile(fig, 5)                                  # constant level x season
    np.testing.assert_allclose(C.seasonal_indices(x, 4), fig, rtol=1e-12)
    fig3 = np.array([0.8, 1.0, 1.2])                            # odd m: plain centred average
    np.testing.assert_allclose(C.seasonal_indices(7.0 * np.tile(fig3, 4), 3), fig3, rtol=1e-12)


def test_naive2_reseasonalises_and_falls_back_to_naive():
    fig = np.array([0.5, 1.5, 1.0, 1.0])
    x = 10.0 * np.tile(fig, 5)[:-1]                             # 19 points: ends on position 2 of the cycle
    fc = C.naive2(x, 6, 4)
    level = x[-1] / fig[2]                                      # = 10
    np.testing.assert_allclose(fc, level * fig[[3, 0, 1, 2, 3, 0]], rtol=1e-12)
    flat = np.array([3.0, 5.0, 4.0, 6.0, 5.0])                  # too short for the test: plain naive
    np.testing.assert_allclose(C.naive2(flat, 3, 4), [5.0, 5.0, 5.0])
    np.testing.assert_allclose(C.naive2(flat, 2, 1), [5.0, 5.0])


def test_split_borders_follow_the_papers():
    assert C.split_borders(17420, "ett-h") == (8640, 11520, 14400)
    assert C.split_borders(69680, "ett-m") == (34560, 46080, 57600)
    assert C.split_borders(966, "custom") == (676, 966 - 193, 966)


def test_nhits_search_quick_picks_the_lowest_validation_trial_and_resumes(tmp_path):
    if not _have_data():
        pytest.skip("no shared data (/work/shared/data or ../shared/data)")
    pytest.importorskip("pandas")
    cmd = [sys.executable, str(ROOT / "experiments" / "long_horizon.py"), "--quick", "--search", "3", "--out", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads((tmp_path / "long_horizon_quick.json").read_text())["rows"]
    trials = [r for r in rows if r["protocol"] == "v2-trial"]
    (search,) = [r for r in rows if r["model"] == "NHITS (search 3)"]
    assert len(trials) == 3 and all(r["model"].startswith("NHITS[pool ") for r in trials)
    best = min(trials, key=lambda r: r["valid_losses"][-1])
    assert (search["mse"], search["mae"], search["best_trial_seed"]) == (best["mse"], best["mae"], best["seed"])
    assert search["wall_s"] == pytest.approx(sum(r["wall_s"] for r in trials), abs=0.05)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert again.returncode == 0 and "have NHITS (search 3)/ETTh1/24" in again.stdout
    assert json.loads((tmp_path / "long_horizon_quick.json").read_text())["rows"] == rows


def test_nbeats_sampler_draws_series_uniformly(monkeypatch):
    """tourism.py --sampler nbeats: each series equally likely whatever its length (N-BEATS'
    draw), where the default draw weighs a series by its number of windows."""
    import tourism
    from ndiv.data import TimeSeriesDataset, TrainWindowSampler

    sizes = (20, 200)
    ds = TimeSeriesDataset.from_df({"unique_id": np.repeat([0, 1], sizes),
                                    "ds": np.concatenate([np.arange(n) for n in sizes]), "y": np.arange(float(sum(sizes)))})

    def share_of_short_series():
        """(share of the short series' windows among the valid ones, share among 4000 drawn)."""
        s = TrainWindowSampler(ds, input_size=4, h=4, batch_size=2, windows_batch_size=4000, random_seed=3)
        batch = s.sample()
        _, view, final = s._series_windows(batch["series_idx"])
        short = final // view.shape[2] == 0
        return float(np.mean(short)), float(np.mean(short[batch["window_idx"]]))

    valid, drawn = share_of_short_series()
    assert valid < 0.15 and drawn == pytest.approx(valid, abs=0.02)
    for name in ("draw", "_series_windows"):          # undone after the test
        monkeypatch.setattr(TrainWindowSampler, name, getattr(TrainWindowSampler, name))
    tourism.use_nbeats_sampler()
    assert share_of_short_series()[1] == pytest.approx(0.5, abs=0.03)
