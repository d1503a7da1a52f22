"""Python-function models the serving tests register (flavor ``pyfunc``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def row_sums(batch: Any) -> np.ndarray[Any, Any]:
    """Deterministic: each row's sum (so every caller can check its own answer)."""
    return np.asarray(batch, dtype=np.float64).sum(axis=1)


def always_fails(batch: Any) -> np.ndarray[Any, Any]:
    raise RuntimeError("this model is broken")


def fails_on_negative(batch: Any) -> np.ndarray[Any, Any]:
    array = np.asarray(batch, dtype=np.float64)
    if (array < 0).any():
        raise ValueError("negative input")
    return array.sum(axis=1)


def slow(batch: Any) -> np.ndarray[Any, Any]:
    time.sleep(0.3)
    return np.asarray(batch, dtype=np.float64).sum(axis=1)


def times_ten(batch: Any) -> np.ndarray[Any, Any]:
    return np.asarray(batch, dtype=np.float64).sum(axis=1) * 10


def deliberate_sums(batch: Any) -> np.ndarray[Any, Any]:
    """Row sums after 5 ms of work (a model slow enough for batches to form); negative → error."""
    array = np.asarray(batch, dtype=np.float64)
    time.sleep(0.005)
    if (array < 0).any():
        raise ValueError("negative input")
    return array.sum(axis=1)


def fails_one_in_five(batch: Any) -> np.ndarray[Any, Any]:
    """Row sums, but a row whose first value is above the normal's 80th percentile fails:
    about 20 % of requests of standard-normal rows (a candidate a canary must roll back)."""
    array = np.asarray(batch, dtype=np.float64)
    if (array[:, 0] > 0.8416).any():
        raise RuntimeError("candidate bug")
    return array.sum(axis=1)
