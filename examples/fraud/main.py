"""Card-fraud detection on modelplane: the main job of ``make demo``.

1. make a synthetic card-transaction data set and write it to ``data/transactions.csv``;
2. train a logistic regression and a gradient-boosting model on it;
3. register both as versions of the model ``fraud``, with their metrics, parameters and lineage
   (the data file's sha256, the git commit): the logistic regression is the ``champion`` in
   production, the gradient boosting the ``challenger`` that must earn its place;
4. load ``models:/fraud@champion`` back, score a few transactions and print the results;
5. run the challenger's release gates (``modelplane gate``): signature, ROC AUC on a holdout set
   against the champion's, latency, and record the result on the version;
6. serve the champion and call it over ``/predict`` and the Open Inference Protocol;
7. roll the gated challenger out as a canary (10 % → 50 % → 100 %) under live traffic, each
   step judged on measured evidence, to promotion.

It runs on modelplane's embedded defaults: a SQLite database and an artifact folder under
``$MODELPLANE_HOME`` (default ``./.modelplane``). Each run registers two new versions.

    python examples/fraud/main.py
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelplane
from modelplane.client import default_client
from modelplane.errors import RolloutNotFound

# This example's own module, beside this file (a script's folder is first on sys.path).
from data import CATEGORIES, FEATURES, LABEL, make_transactions, sha256_of, write_csv  # isort: skip

HERE = Path(__file__).parent
DATA_FILE = HERE / "data" / "transactions.csv"
HOLDOUT_FILE = HERE / "data" / "holdout.csv"
MODEL_NAME = "fraud"
TARGET_RECALL = 0.80
RECALL_KEY = f"{int(TARGET_RECALL * 100)}_recall"  # metric names: precision_at_80_recall, …
SEED = 7

console = Console()


@dataclass
class Candidate:
    """A trained model and what it scored on the test split."""

    key: str
    title: str
    model: Any
    params: dict[str, Any]
    metrics: dict[str, float]


# -- training ---------------------------------------------------------------------------------


def logistic_regression() -> Pipeline:
    """Scaled numbers and a one-hot merchant category into a logistic regression."""
    prepare = ColumnTransformer(
        [("category", OneHotEncoder(handle_unknown="ignore"), ["merchant_category"])],
        remainder=StandardScaler(),
    )
    return Pipeline([("prepare", prepare), ("classify", LogisticRegression(max_iter=1000))])


def gradient_boosting() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=300,
        max_leaf_nodes=15,
        early_stopping=True,
        random_state=SEED,
    )


def evaluate(model: Any, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """ROC AUC, average precision, and precision (with its threshold) at the target recall."""
    scores = model.predict_proba(X)[:, 1]
    precision, recall, thresholds = precision_recall_curve(y, scores)
    # precision/recall have one more point than thresholds (recall 0, no threshold): drop it.
    reachable = np.flatnonzero(recall[:-1] >= TARGET_RECALL)
    best = reachable[np.argmax(precision[reachable])]
    return {
        "roc_auc": round(float(roc_auc_score(y, scores)), 4),
        "average_precision": round(float(average_precision_score(y, scores)), 4),
        f"precision_at_{RECALL_KEY}": round(float(precision[best]), 4),
        f"threshold_at_{RECALL_KEY}": float(thresholds[best]),
    }


def train(
    X_train: pd.DataFrame, y_train: pd.Series, X_test: pd.DataFrame, y_test: pd.Series
) -> list[Candidate]:
    candidates = []
    for key, title, model in (
        ("logistic_regression", "Logistic regression", logistic_regression()),
        ("gradient_boosting", "Gradient boosting", gradient_boosting()),
    ):
        started = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - started
        metrics = evaluate(model, X_test, y_test) | {"train_seconds": round(seconds, 2)}
        candidates.append(Candidate(key, title, model, hyperparameters(model), metrics))
    return candidates


def hyperparameters(model: Any) -> dict[str, Any]:
    if isinstance(model, Pipeline):
        clf = model.named_steps["classify"]
        return {"algorithm": type(clf).__name__, "C": clf.C, "max_iter": clf.max_iter}
    return {
        "algorithm": type(model).__name__,
        "learning_rate": model.learning_rate,
        "max_leaf_nodes": model.max_leaf_nodes,
        "iterations": model.n_iter_,
    }


# -- the demo ---------------------------------------------------------------------------------


def git_commit() -> str | None:
    """The commit this code is at (``None`` outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def sample_transactions() -> pd.DataFrame:
    """Six hand-picked transactions: three ordinary, one borderline, two like card theft."""
    rows = [
        # amount, category, hour, km from home, transactions in the last hour
        (42.10, "grocery", 18, 2.5, 0),
        (61.80, "fuel", 8, 14.0, 1),
        (23.40, "restaurants", 13, 1.2, 0),
        (180.00, "travel", 22, 60.0, 0),
        (289.00, "online", 2, 35.0, 2),
        (1249.99, "electronics", 3, 820.0, 4),
    ]
    return pd.DataFrame(
        {
            "amount": [r[0] for r in rows],
            "merchant_category": [CATEGORIES.index(r[1]) for r in rows],
            "hour": [r[2] for r in rows],
            "distance_from_home_km": [r[3] for r in rows],
            "txn_last_hour": [r[4] for r in rows],
        }
    )


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    path = path.absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def decision(probability: float, review_at: float) -> str:
    if probability >= 0.5:
        return "[bold red]block[/]"
    if probability >= review_at:
        return "[yellow]review[/]"
    return "[green]approve[/]"


def scores_table(model: modelplane.LoadedModel, sample: pd.DataFrame) -> Table:
    """The champion's fraud probability and decision for each transaction of ``sample``."""
    probabilities = model.predict_proba(sample)[:, 1]
    review_at = model.version.metrics[f"threshold_at_{RECALL_KEY}"]
    algorithm = model.version.tags.get("algorithm", "?").replace("_", " ")
    table = Table(
        title=f"{MODEL_NAME}@champion (version {model.version.version}, {algorithm}) "
        f"scores {len(sample)} transactions",
        caption=f"km: from home · txns/h: the card's transactions in the last hour\n"
        f"review ≥ {review_at:.1%} ({TARGET_RECALL:.0%} recall on test data) · block ≥ 50%",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("amount", "merchant", "hour", "km", "txns/h", "P(fraud)"):
        table.add_column(column, justify="left" if column == "merchant" else "right")
    table.add_column("decision")
    for row, p in zip(sample.to_dict("records"), probabilities, strict=True):
        table.add_row(
            f"{row['amount']:,.2f}",
            CATEGORIES[row["merchant_category"]],
            f"{row['hour']:02d}:00",
            f"{row['distance_from_home_km']:,.1f}",
            str(row["txn_last_hour"]),
            f"{p:.2%}",
            decision(float(p), review_at),
        )
    return table


def versions_table(numbers: list[int]) -> Table:
    """The registered versions ``numbers`` of the model, read back from the registry."""
    client = default_client()
    table = Table(
        title=f"Versions registered by this run (model '{MODEL_NAME}')",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("version", justify="right")
    table.add_column("flavor")
    table.add_column("algorithm", no_wrap=True)
    table.add_column("ROC AUC", justify="right", no_wrap=True)
    table.add_column(f"precision\n@ {TARGET_RECALL:.0%} recall", justify="right", no_wrap=True)
    table.add_column("aliases", no_wrap=True)
    for number in numbers:
        v = client.get_version(MODEL_NAME, number)
        table.add_row(
            str(v.version),
            v.flavor,
            v.tags.get("algorithm", "?").replace("_", " "),
            f"{v.metrics['roc_auc']:.3f}",
            f"{v.metrics[f'precision_at_{RECALL_KEY}']:.1%}",
            ", ".join(v.aliases) or "—",
        )
    return table


def main() -> None:
    started = time.perf_counter()
    home = default_client().platform.settings.home
    console.rule("[bold]modelplane · card-fraud demo")
    console.print(f"registry: [cyan]{home.absolute()}[/] (set MODELPLANE_HOME to change it)")

    # 1. data
    frame = make_transactions(50_000, seed=SEED)
    write_csv(frame, DATA_FILE)
    data_hash = f"sha256:{sha256_of(DATA_FILE)}"
    console.print(
        f"data: {len(frame):,} transactions, fraud rate [bold]{frame[LABEL].mean():.2%}[/]\n"
        f"      {shown(DATA_FILE)}\n      {data_hash}"
    )

    # 2. train and evaluate
    X_train, X_test, y_train, y_test = train_test_split(
        frame[FEATURES], frame[LABEL], test_size=0.3, stratify=frame[LABEL], random_state=SEED
    )
    candidates = train(X_train, y_train, X_test, y_test)
    console.print(f"trained on {len(X_train):,} rows, tested on {len(X_test):,}:")
    for candidate in candidates:
        m = candidate.metrics
        console.print(
            f"  {candidate.title.lower():<19} {m['train_seconds']:4.1f} s   "
            f"ROC AUC {m['roc_auc']:.3f}   precision {m[f'precision_at_{RECALL_KEY}']:.1%} "
            f"at {TARGET_RECALL:.0%} recall"
        )

    # 3. register both: the logistic regression is in production, the boosting challenges it
    by_key = {c.key: c for c in candidates}
    champion, challenger = by_key["logistic_regression"], by_key["gradient_boosting"]
    lineage: dict[str, Any] = {
        "data_sources": [{"uri": DATA_FILE.absolute().as_uri(), "hash": data_hash}],
        "code_commit": git_commit(),
        "run_id": uuid.uuid4().hex,
    }
    numbers: list[int] = []
    for candidate, alias in ((champion, "champion"), (challenger, "challenger")):
        version = modelplane.log_model(
            candidate.model,
            name=MODEL_NAME,
            input_example=X_train.head(5),
            metrics=candidate.metrics,
            params=candidate.params,
            lineage=lineage,
            tags={"algorithm": candidate.key, "example": "fraud"},
            alias=alias,
            description=f"{candidate.title} on {len(X_train):,} synthetic transactions",
        )
        numbers.append(version.version)

    # 4. load the champion back by its alias and score a few transactions
    model = modelplane.load_model(f"models:/{MODEL_NAME}@champion")
    console.print()
    console.print(scores_table(model, sample_transactions()))
    console.print()
    console.print(versions_table(sorted(numbers, reverse=True)))
    commit = lineage["code_commit"]
    console.print(
        f"lineage of both: {shown(DATA_FILE)} ({data_hash[:19]}…),\n"
        f"                 commit {commit[:12] if commit else 'unknown'}, "
        f"run {lineage['run_id'][:12]}"
    )

    # 5. the challenger's release gates, against the champion, on data it was not trained on
    console.print()
    console.rule("[bold]release gates")
    X_test.assign(**{LABEL: y_test}).to_csv(HOLDOUT_FILE, index=False)
    candidate = numbers[1]
    gate = [
        "gate", f"{MODEL_NAME}/{candidate}", "--holdout", shown(HOLDOUT_FILE), "--label", LABEL,
        "--metric", "roc_auc", "--margin", "0.01", "--latency-budget-ms", "50",
    ]
    console.print(f"[dim]$ modelplane {' '.join(gate)}[/]")
    gated = subprocess.run(
        [sys.executable, "-m", "modelplane.cli.main", *gate], text=True, capture_output=True
    )
    console.print(gated.stdout.rstrip())
    if gated.returncode != 0:
        raise SystemExit(f"the challenger's gates failed: {gated.stderr.strip()}")

    # 6-7. serve the champion, call it as a client would, then canary the challenger
    # a canary of an earlier, interrupted run would block this one (one per model)
    with contextlib.suppress(RolloutNotFound):
        default_client().abort_rollout(MODEL_NAME, "an earlier demo run was interrupted")
    if os.environ.get("MODELPLANE_DEMO_SERVE", "1") != "0":
        from serve import serve_and_call

        console.print()
        console.rule("[bold]serving")
        traffic = X_test.head(2000).to_dict(orient="records")
        serve_and_call(
            MODEL_NAME, sample_transactions(), console, candidate=candidate, traffic=traffic
        )
    console.print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
