"""A synthetic card-transaction data set with a realistic, rare fraud label.

Each row is one card transaction:

    amount                 float   log-normal, median about 30 (currency units)
    merchant_category      int     code into CATEGORIES (grocery, fuel, online, …)
    hour                   int     0-23, local time; busier by day
    distance_from_home_km  float   log-normal; a few transactions far from home
    txn_last_hour          int     transactions on the same card in the previous hour
    is_fraud               int     1 for fraud (about 1.5 % of rows)

The label comes from a logistic rule over the features (large amounts, online and electronics
merchants, night hours, far from home, bursts of transactions) plus noise, so a model can learn
it but never perfectly. Everything is drawn from one seeded generator: the same seed gives the
same file, byte for byte, and so the same sha256 in the model's lineage.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["CATEGORIES", "FEATURES", "LABEL", "make_transactions", "sha256_of", "write_csv"]

CATEGORIES = ("grocery", "fuel", "restaurants", "online", "travel", "electronics")
FEATURES = ["amount", "merchant_category", "hour", "distance_from_home_km", "txn_last_hour"]
LABEL = "is_fraud"

# How often each category occurs, and how much it adds to the fraud log-odds.
_CATEGORY_SHARE = np.array([0.30, 0.15, 0.20, 0.20, 0.05, 0.10])
_CATEGORY_RISK = np.array([-1.5, -0.5, -1.25, 2.5, 1.25, 2.25])
# Share of transactions by hour of day: quiet at night, peaks at lunch and early evening.
_HOUR_WEIGHT = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 4, 4.5, 5, 6, 5.5, 5, 5, 5.5, 6, 6.5, 6, 5, 4, 3, 2]
)
_INTERCEPT = -10.75  # sets the base rate: about 1.5 % fraud at the default seed


def make_transactions(n: int = 50_000, *, seed: int = 7) -> pd.DataFrame:
    """``n`` transactions with features and an ``is_fraud`` label (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    category = rng.choice(len(CATEGORIES), size=n, p=_CATEGORY_SHARE)
    amount = np.round(rng.lognormal(mean=3.4, sigma=1.0, size=n), 2)
    hour = rng.choice(24, size=n, p=_HOUR_WEIGHT / _HOUR_WEIGHT.sum())
    distance = np.round(rng.lognormal(mean=1.5, sigma=1.2, size=n), 1)
    txn_last_hour = rng.poisson(0.4, size=n)

    night = (hour <= 5).astype(float)
    logit = (
        _INTERCEPT
        + 2.5 * np.log(amount / 30.0).clip(-2, None)
        + _CATEGORY_RISK[category]
        + 3.5 * night
        + 2.0 * np.log1p(distance / 10.0)
        + 1.8 * np.minimum(txn_last_hour, 6)
        + 2.0 * night * (amount > 200)  # large purchases at night: the classic pattern
        + rng.normal(0.0, 0.2, size=n)  # what no feature explains
    )
    is_fraud = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return pd.DataFrame(
        {
            "amount": amount,
            "merchant_category": category.astype(np.int64),
            "hour": hour.astype(np.int64),
            "distance_from_home_km": distance,
            "txn_last_hour": txn_last_hour.astype(np.int64),
            LABEL: is_fraud.astype(np.int64),
        }
    )


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as CSV (folder created); the bytes depend only on the data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
