import numpy as np
import pytest


def long_data(sizes=(30, 17, 9), start="2000-01-01", freq="D", exog=("x1", "x2"), seed=0):
    """dict of arrays: series 'a', 'b', ... with `sizes` rows, daily dates, random walk y."""
    rng = np.random.default_rng(seed)
    uid, ds, y = [], [], []
    cols = {c: [] for c in exog}
    for k, n in enumerate(sizes):
        uid += [chr(ord("a") + k)] * n
        ds.append(np.datetime64(start, "D") + np.arange(n))
        y.append(rng.normal(size=n).cumsum() + 10)
        for c in exog:
            cols[c].append(rng.normal(size=n))
    out = {"unique_id": np.array(uid), "ds": np.concatenate(ds).astype("datetime64[ns]"), "y": np.concatenate(y)}
    out.update({c: np.concatenate(v) for c, v in cols.items()})
    return out


@pytest.fixture
def data():
    return long_data()


@pytest.fixture(scope="session")
def nf_base():
    """NeuralForecast's BaseModel and TimeSeriesDataset (skip without neuralforecast/torch)."""
    pytest.importorskip("torch")
    pytest.importorskip("neuralforecast")
    import logging
    import warnings
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning_fabric").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from neuralforecast.common._base_model import BaseModel
        from neuralforecast.losses.pytorch import MAE
        from neuralforecast.tsdataset import TimeSeriesDataset, TimeSeriesLoader

    class Windows(BaseModel):
        """The smallest NeuralForecast windows model: only the data methods are used."""
        EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True

        def __init__(self, h, input_size, **kw):
            base = dict(loss=MAE(), valid_loss=None, learning_rate=1e-3, max_steps=1, val_check_steps=1,
                        batch_size=32, valid_batch_size=None, windows_batch_size=1024,
                        inference_windows_batch_size=None, start_padding_enabled=False,
                        logger=False, enable_progress_bar=False)
            base.update(kw)
            super().__init__(h=h, input_size=input_size, **base)

    return dict(Model=Windows, Dataset=TimeSeriesDataset, Loader=TimeSeriesLoader)
