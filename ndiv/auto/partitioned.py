"""Fits over partitions of many series: one copy of a model per group of series, each group
trained on its own worker.

    model = Partitioned(NHITS(h=48, input_size=96), n_partitions=16)
    fc = Forecaster(models=[model], freq=1).fit(df, backend=client)   # 16 fits, on the cluster
    fc.predict()                 # each series forecast by the copy trained on its partition

A global model trained on 100,000 series is one long sequential job; the same model trained on
16 partitions of 6,250 series is 16 independent jobs, which a cluster runs side by side (the
data are scattered once, each task picks its partition's rows on the worker). What changes is
the model: each copy sees only its partition's windows (as a per-group model in MLForecast or
a per-partition fit in Spark's NeuralForecast examples), so use it when the series are many
enough that a partition still holds plenty of windows.

The partitions are contiguous runs of the series in the dataset's order (sorted ids), split so
that each holds about the same number of rows. Every copy starts from the wrapped model's
weights and random_seed, so a fit is the same on any backend. A second fit on the same series
continues from each copy's trained weights (NeuralForecast's semantics for a second fit); on
other series it starts again from the wrapped model. Forecasts need the series of the fit
(a series it has not seen has no copy: ValueError). Multivariate and Auto models are refused
(a multivariate model's n_series is its partition; search first, then partition the best model).
"""
from __future__ import annotations

import copy

import numpy as np

from ndiv import nn
from ndiv.models.base import BaseModel

# what Forecaster and conformal read from a model before and after fit: the wrapped model's values
_SHARED = ("h", "input_size", "inference_input_size", "start_padding_enabled", "futr_exog_list", "hist_exog_list",
           "stat_exog_list", "cat_exog_list", "categorical_cardinalities", "loss", "valid_loss", "device",
           "random_seed", "EXOGENOUS_FUTR", "EXOGENOUS_HIST", "EXOGENOUS_STAT", "EXOGENOUS_CAT", "RECURRENT")


class Partitioned(BaseModel):
    """`model` trained once per partition of the series (n_partitions groups of about equal rows).

    Attributes after fit: partitions (an nn.ModuleList of the fitted copies), part_uids (the
    unique_ids of each partition, in the dataset's order)."""
    MULTIVARIATE = False

    def __init_subclass__(cls, **kwargs):   # not BaseModel's: the signature is this one
        super(BaseModel, cls).__init_subclass__(**kwargs)

    def __init__(self, model: BaseModel, n_partitions: int):
        nn.Module.__init__(self)
        from ndiv.auto.base_auto import BaseAuto
        if not isinstance(model, BaseModel) or isinstance(model, (BaseAuto, Partitioned)):
            raise TypeError(f"Partitioned wraps one ndiv model (ndiv.models.*), got {type(model).__name__}"
                            + ("; run the search first and partition the best model (auto.model)"
                               if isinstance(model, BaseAuto) else ""))
        if model.MULTIVARIATE:
            raise ValueError(f"Partitioned({model}): {type(model).__name__} is multivariate (its n_series is the "
                             "data's series): partition univariate models only")
        if isinstance(n_partitions, bool) or not isinstance(n_partitions, (int, np.integer)) or n_partitions < 1:
            raise ValueError(f"Partitioned: n_partitions must be an integer >= 1, got {n_partitions!r}")
        self.__dict__["model"] = model       # the template, not a submodule: its weights are not the fit's
        self.n_partitions = int(n_partitions)
        self.alias = model.alias
        self.partitions = nn.ModuleList()
        self.part_uids: list = []
        self.val_size = self.test_size = 0
        self.train_trajectories, self.valid_trajectories = [], []
        for k in _SHARED:
            if hasattr(model, k):
                self.__dict__[k] = getattr(model, k)

    def __repr__(self):
        return str(self.model)

    # -- partitions ------------------------------------------------------------------------------
    def split(self, dataset) -> list[np.ndarray]:
        """Series indices of each partition: contiguous runs of about equal rows (none empty)."""
        k = min(self.n_partitions, dataset.n_series)
        cum = np.concatenate([[0], np.cumsum(dataset.sizes)])      # rows before series i
        target = cum[-1] * np.arange(1, k) / k
        after = np.clip(np.searchsorted(cum, target), 1, dataset.n_series)   # first cut with >= target rows
        closer = target - cum[after - 1] <= cum[after] - target
        cuts = np.unique(np.clip(np.where(closer, after - 1, after), 1, dataset.n_series - 1))
        return [p for p in np.split(np.arange(dataset.n_series), cuts) if len(p)]

    def start_copies(self, dataset) -> list[tuple[BaseModel, np.ndarray]]:
        """(model to fit, series indices) per partition: the trained copies when the partitions
        are those of the last fit, else fresh copies of the wrapped model."""
        parts = self.split(dataset)
        uids = [dataset.uids[p] for p in parts]
        same = (len(uids) == len(self.part_uids) and len(self.partitions) == len(uids)
                and all(np.array_equal(a, b) for a, b in zip(uids, self.part_uids)))
        models = list(self.partitions) if same else [copy.deepcopy(self.model) for _ in parts]
        return list(zip(models, parts))

    def adopt(self, fitted: list[BaseModel], dataset, parts: list[np.ndarray]) -> None:
        """Take the fitted copies (one per partition, in order) as this model's state."""
        self.partitions = nn.ModuleList(fitted)
        self.part_uids = [dataset.uids[p] for p in parts]
        first = fitted[0]
        self.val_size, self.test_size = first.val_size, first.test_size
        self.train_trajectories = [list(m.train_trajectories) for m in fitted]
        self.valid_trajectories = [list(m.valid_trajectories) for m in fitted]

    def _routes(self, dataset) -> list[tuple[BaseModel, np.ndarray]]:
        """(fitted copy, indices of dataset's series in its partition) for predictions."""
        if not self.part_uids:
            raise ValueError(f"{self}: call fit before predict (no partition has been trained)")
        where = {}
        for p, uids in enumerate(self.part_uids):
            for u in uids.tolist():
                where[u] = p
        found = np.array([where.get(u, -1) for u in dataset.uids.tolist()], dtype=np.int64)
        if (found < 0).any():
            missing = dataset.uids[found < 0][:5].tolist()
            raise ValueError(f"{self}: series {missing} were not in the fit's partitions: a partitioned model "
                             "forecasts the series it was trained on; fit again with these series")
        return [(m, np.flatnonzero(found == p)) for p, m in enumerate(self.partitions) if (found == p).any()]

    # -- the model interface Forecaster uses ------------------------------------------------------
    def fit_dataset(self, dataset, val_size: int = 0, test_size: int = 0) -> "Partitioned":
        """Fit each partition's copy here, one after another (Forecaster.fit(backend=...) runs
        them on workers instead: ndiv.auto.parallel)."""
        starts = self.start_copies(dataset)
        for m, idx in starts:
            m.fit_dataset(dataset.subset(idx), val_size=val_size, test_size=test_size)
        self.adopt([m for m, _ in starts], dataset, [idx for _, idx in starts])
        return self

    def predict_dataset(self, dataset, step_size: int = 1, test_size: int | None = None, quantiles=None):
        """Each partition's copy forecasts its series; the rows come back in dataset's series order
        (float32 [n_windows_total, h, n_outputs], series-major, as BaseModel.predict_dataset)."""
        routes = self._routes(dataset)
        return assemble(dataset.n_series, [
            (idx, m.predict_dataset(dataset.subset(idx), step_size=step_size, test_size=test_size, quantiles=quantiles))
            for m, idx in routes])

    def validate(self, dataset) -> float:
        """The validation loss over all series: the partitions' losses weighted by their series."""
        routes = self._routes(dataset)
        return float(sum(m.validate(dataset.subset(idx)) * len(idx) for m, idx in routes)
                     / sum(len(idx) for _, idx in routes))


def assemble(n_series: int, pieces) -> np.ndarray:
    """Forecasts of partitions [(series indices, y [len(idx) * W, h, K])] as one array
    [n_series * W, h, K] in the dataset's series order."""
    out = None
    for idx, y in pieces:
        y = y.reshape(len(idx), -1, *y.shape[1:])
        if out is None:
            out = np.empty((n_series, *y.shape[1:]), y.dtype)
        out[idx] = y
    return out.reshape(-1, *out.shape[2:])
