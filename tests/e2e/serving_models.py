"""Python-function models the serving tests register (flavor ``pyfunc``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
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


HOLD = 7777.0


def held(batch: Any) -> np.ndarray[Any, Any]:
    """Row sums; a batch whose first value is ``HOLD`` is held in flight: the model creates
    ``$MODELPLANE_TEST_GATE/started`` and waits until the test creates ``…/release`` (at most
    60 s), so a test knows the request is inside the model without sleeping for it."""
    array = np.asarray(batch, dtype=np.float64)
    if array.size and array.flat[0] == HOLD:
        gate = Path(os.environ["MODELPLANE_TEST_GATE"])
        (gate / "started").touch()
        deadline = time.monotonic() + 60
        while not (gate / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
    return array.sum(axis=1)


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
