"""Registry benchmark: modelplane's Python API on SQLite and PostgreSQL, against MLflow 3.17.

    .venv/bin/python benchmarks/registry.py [--db sqlite|postgres|both] [--versions 10000]
                                            [--iterations 200] [--cold-runs 5] [--json PATH|-]

For each database it builds a fresh registry (SQLite: a temporary home folder; PostgreSQL: a
fresh schema on 127.0.0.1:5432/test, dropped at the end), then:

* **populates** one model, ``bench``, with ``--versions`` versions through the message bus (the
  same command path as ``log_model``; ~1 ms a version on SQLite, ~3.5 ms on PostgreSQL, so no
  bulk shortcut is needed). Every 10th version carries the tag ``team=fraud`` (the others
  ``team=risk``), every 1000th ``release=candidate``; each has an ``auc`` metric spread evenly
  over 0.5–1.0. No ANALYZE is run afterwards: the targets ask for speed without manual tuning.
* registers a **champion**: a scikit-learn GradientBoostingClassifier (100 trees, 20 features);
* times the **reads** through ``Client``: resolve an alias, get a version, the first page (100),
  tag-filtered pages (10 % and 0.1 % of versions carry the tag), a metric filter, a deep page;
* times **registration** of a small (~9 KB) ``.skops`` file with ``Client.register_file``, which
  load-checks the file (safe skops types only), hashes and stores it content-addressed, then
  registers it (one transaction with its event). MLflow's ``create_model_version`` only records
  a source path and copies nothing. ``Client.log_model`` of a small model (it also saves the
  model with skops) and the bare ``RegisterVersion`` command (the database's share) are timed in
  turns with it, so all three see the same machine;
* times a **cold load** in a fresh process: ``python -c "import modelplane;
  modelplane.load_model('models:/bench@champion').predict(X)"``, process start to first
  prediction; and, in turns with it, two floors: a fresh process that does only what the flavor
  needs (``import skops.io``, ``skops.io.load``, ``predict``), once as written and once skipping
  skops' import-time scan of every scikit-learn estimator, as modelplane's runtime does.

Every timing uses ``time.perf_counter_ns`` after warm-up iterations; reads report p50 and p95 of
``--iterations`` calls. The machine is shared and noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from modelplane.client import Client
from modelplane.config import Settings
from modelplane.core.pagination import Page
from modelplane.registry import commands as rc
from modelplane.registry.model import DataSource, Lineage, ModelVersion
from modelplane.registry.views import MetricFilter

PG_SERVER = os.environ.get(
    "MODELPLANE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MODEL = "bench"
N_FEATURES = 20
DATABASES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}

# MLflow 3.17's registry on this kind of machine, p50 ms (SQLite, PostgreSQL): issue #3.
MLFLOW: dict[str, tuple[float, float]] = {
    "register": (2.9, 4.8),
    "resolve": (1.8, 3.0),
    "get_version": (2.1, 3.1),
    "first_page": (26.0, 264.0),
    "tag_search": (7.0, 980.0),
    "cold_load": (7600.0, 7700.0),
}
SEARCH_CEILING_MS = 5.0  # first page and filtered searches, on both databases
COLD_LOAD_CEILING_MS = 2500.0


@dataclass
class Op:
    """One row of the table: what is timed and how its target is set."""

    key: str
    label: str
    target: str  # "mlflow" (≤ MLflow), "half" (≤ half of MLflow), "search", "cold", "" (none)
    mlflow: str | None = None  # the MLFLOW key to compare with


OPS = [
    Op("register", "register a version (register_file)", "mlflow", "register"),
    Op("log_model", "  log_model (also saves with skops)", ""),
    Op("register_bus", "  RegisterVersion alone (1 transaction)", ""),
    Op("resolve", "resolve an alias", "half", "resolve"),
    Op("get_version", "get a version", "half", "get_version"),
    Op("first_page", "first page (100 versions)", "search", "first_page"),
    Op("tag_search", "tag filter, 10 % match", "search", "tag_search"),
    Op("rare_tag", "tag filter, 0.1 % match", "search"),
    Op("metric_filter", "metric filter auc>=0.9, 20 % match", "search"),
    Op("deep_page", "a page in the middle, by cursor", "search"),
    Op("cold_load", "cold load_model → first prediction", "cold", "cold_load"),
    Op("cold_floor", "  floor: import skops.io, load, predict", ""),
    Op("cold_floor_noscan", "  floor, skops' estimator scan skipped", ""),
]


@dataclass
class Timing:
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return float(np.percentile(self.samples_ms, 50))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.samples_ms, 95))


@dataclass
class DbRun:
    """Everything measured on one database."""

    db: str
    timings: dict[str, Timing] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cold_breakdown_ms: dict[str, float] = field(default_factory=dict)


def measure(fn: Callable[[int], object], *, iterations: int, warmup: int) -> Timing:
    """Call ``fn(i)`` ``warmup`` times untimed, then ``iterations`` times timed."""
    return measure_interleaved({"": fn}, iterations=iterations, warmup=warmup)[""]


def measure_interleaved(
    fns: dict[str, Callable[[int], object]], *, iterations: int, warmup: int
) -> dict[str, Timing]:
    """Like `measure`, taking turns between ``fns`` so each sees the same (noisy) machine."""
    for i in range(warmup):
        for fn in fns.values():
            fn(i)
    samples: dict[str, list[float]] = {key: [] for key in fns}
    for i in range(warmup, warmup + iterations):
        for key, fn in fns.items():
            started = time.perf_counter_ns()
            fn(i)
            samples[key].append((time.perf_counter_ns() - started) / 1e6)
    return {key: Timing(values) for key, values in samples.items()}


# -- set-up -----------------------------------------------------------------------------------


@contextmanager
def database(db: str) -> Iterator[str | None]:
    """The database URL to use (``None``: SQLite in ``home``); a PostgreSQL schema is dropped."""
    if db == "sqlite":
        yield None
        return
    schema = f"mp_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in PG_SERVER else "?"
        yield f"{PG_SERVER}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def version_meta(i: int) -> dict[str, Any]:
    """Tags and metrics of the ``i``-th populated version (deterministic)."""
    tags = {"team": "fraud" if i % 10 == 0 else "risk"}
    if i % 1000 == 0:
        tags["release"] = "candidate"
    auc = 0.5 + 0.5 * ((i * 7919) % 10_000) / 10_000  # evenly spread, not sorted by version
    return {"tags": tags, "metrics": {"auc": round(auc, 4), "loss": round(1 - auc, 4)}}


def small_models(count: int, seed: int) -> list[LogisticRegression]:
    """``count`` distinct tiny fitted models (distinct bytes, so no artifact is deduplicated)."""
    rng = np.random.default_rng(seed)
    models = []
    for _ in range(count):
        X = rng.normal(size=(40, 4))
        y = (X[:, 0] + rng.normal(size=40) > 0).astype(int)
        models.append(LogisticRegression().fit(X, y))
    return models


def register_command(i: int, digest: str, size: int, name: str) -> rc.RegisterVersion:
    """The command registering the ``i``-th populated version (what ``log_model`` sends)."""
    return rc.RegisterVersion(
        model=MODEL,
        flavor="sklearn",
        digest=digest,
        size=size,
        artifact_name=name,
        signature={
            "inputs": [{"name": "input-0", "dtype": "float64", "shape": [-1, N_FEATURES]}],
            "outputs": [],
        },
        params={"seed": str(i), "C": "1.0"},
        lineage=Lineage(
            data_sources=(DataSource("file:///data/train.parquet", "sha256:" + "0" * 64),),
            code_commit="0" * 40,
        ),
        description="",
        aliases=(),
        create_model=True,
        **version_meta(i),
    )


def populate(client: Client, n: int, tmp: Path, console: Console) -> float:
    """Register ``n`` versions of ``MODEL`` through the bus; return the seconds it took."""
    source = tmp / "model.skops"
    sio.dump(small_models(1, seed=0)[0], source)
    stored = client.platform.artifacts.put(source)
    started = time.perf_counter()
    with console.status(f"populating {n:,} versions through the bus…"):
        for i in range(1, n + 1):
            client.platform.bus.handle(register_command(i, stored.digest, stored.size, stored.name))
    return time.perf_counter() - started


# -- the measurements -------------------------------------------------------------------------


def bench_reads(client: Client, run: DbRun, versions: int, iterations: int) -> None:
    middle = versions // 2
    cursor = None  # of the page holding the middle version, found by walking the pages
    for _ in range(middle // 100):
        cursor = client.list_versions(MODEL, limit=100, cursor=cursor).next_cursor
    good = [MetricFilter.parse("auc>=0.9")]
    pages: dict[str, Callable[[int], Page[ModelVersion]]] = {
        "first_page": lambda i: client.list_versions(MODEL, limit=100),
        "tag_search": lambda i: client.list_versions(MODEL, tags={"team": "fraud"}, limit=100),
        "rare_tag": lambda i: client.list_versions(MODEL, tags={"release": "candidate"}, limit=100),
        "metric_filter": lambda i: client.list_versions(MODEL, metrics=good, limit=100),
        "deep_page": lambda i: client.list_versions(MODEL, limit=100, cursor=cursor),
    }
    sizes = {key: len(page(0).items) for key, page in pages.items()}
    assert all(n == 100 for key, n in sizes.items() if key != "rare_tag"), sizes
    reads: dict[str, Callable[[int], object]] = {
        "resolve": lambda i: client.resolve(f"{MODEL}@champion"),
        "get_version": lambda i: client.get_version(MODEL, middle),
        **pages,
    }
    for key, fn in reads.items():
        run.timings[key] = measure(fn, iterations=iterations, warmup=20)
    run.notes.append(
        f"get version: {MODEL}/{middle}; middle page: page {middle // 100 + 1}; "
        f"rare tag page: {sizes['rare_tag']} versions"
    )


def bench_register(client: Client, run: DbRun, iterations: int, tmp: Path) -> None:
    """``register_file``, ``log_model`` and the bare command, in turns, on distinct models."""
    warmup = 10
    files = []
    for i, model in enumerate(small_models(iterations + warmup, seed=1)):
        path = tmp / f"small-{i}.skops"
        sio.dump(model, path)
        files.append(path)
    models = small_models(iterations + warmup, seed=2)
    example = np.zeros((2, 4))
    stored = client.platform.artifacts.put(files[0])
    run.notes.append(f"register_file artifact: {stored.size:,} bytes")
    run.timings |= measure_interleaved(
        {
            "register": lambda i: client.register_file(
                MODEL, files[i], flavor="sklearn", **version_meta(i)
            ),
            "log_model": lambda i: client.log_model(
                models[i], name=MODEL, input_example=example, **version_meta(i)
            ),
            "register_bus": lambda i: client.platform.bus.handle(
                register_command(i, stored.digest, stored.size, stored.name)
            ),
        },
        iterations=iterations,
        warmup=warmup,
    )


CHILD = """\
import time
t0 = time.perf_counter_ns()
import modelplane
t1 = time.perf_counter_ns()
m = modelplane.load_model('models:/{model}@champion')
t2 = time.perf_counter_ns()
m.predict([[0.1] * {features}])
t3 = time.perf_counter_ns()
print(t0, t1, t2, t3)
"""
FLOOR = """\
import time
t0 = time.perf_counter_ns()
{prelude}import sklearn, skops.io
t1 = time.perf_counter_ns()
m = skops.io.load({path!r}, trusted=skops.io.get_untrusted_types(file={path!r}))
t2 = time.perf_counter_ns()
m.predict([[0.1] * {features}])
t3 = time.perf_counter_ns()
print(t0, t1, t2, t3)
"""


# skops.io builds its default trusted-type list at import with sklearn's all_estimators(), which
# imports every scikit-learn module (and torch, through sklearn.externals.array_api_compat, when
# it is installed). modelplane's sklearn runtime skips that scan (the list decides nothing there:
# untrusted types are checked by the runtime itself); this floor does the same.
NO_SCAN = """\
import sklearn.utils
_all = sklearn.utils.all_estimators
sklearn.utils.all_estimators = lambda *args, **kwargs: []
import skops.io
sklearn.utils.all_estimators = _all
"""


def fresh_process(code: str, env: dict[str, str], cwd: Path) -> list[int]:
    """Run ``code`` in a new interpreter; return [spawn, t0, t1, t2, t3] (perf_counter_ns).

    ``perf_counter`` is CLOCK_MONOTONIC on Linux, shared by every process, so the child's stamps
    and the parent's spawn time are on one clock.
    """
    spawned = time.perf_counter_ns()
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"child process failed:\n{out.stderr}")
    return [spawned, *map(int, out.stdout.split()[-4:])]


def bench_cold_load(
    client: Client, run: DbRun, settings: Settings, runs: int, champion_file: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env["MODELPLANE_HOME"] = str(settings.home)
    if settings.db_url:
        env["MODELPLANE_DB_URL"] = settings.db_url
    child = CHILD.format(model=MODEL, features=N_FEATURES)
    variants = {
        "cold_load": child,
        "cold_floor": FLOOR.format(prelude="", path=str(champion_file), features=N_FEATURES),
        "cold_floor_noscan": FLOOR.format(
            prelude=NO_SCAN, path=str(champion_file), features=N_FEATURES
        ),
    }
    fresh_process(child, env, settings.home)  # first touch: page cache, artifact view
    stamps: dict[str, list[list[int]]] = {key: [] for key in variants}
    for _ in range(runs):  # interleaved, so every variant sees the same machine
        for key, code in variants.items():
            stamps[key].append(fresh_process(code, env, settings.home))
    for key, runs_ in stamps.items():
        run.timings[key] = Timing([(s[4] - s[0]) / 1e6 for s in runs_])
    ours = stamps["cold_load"]
    med = np.median(np.array(ours, dtype=float), axis=0)
    run.cold_breakdown_ms = {
        "interpreter start": (med[1] - med[0]) / 1e6,
        "import modelplane": (med[2] - med[1]) / 1e6,
        "load_model (imports, db, verify, skops)": (med[3] - med[2]) / 1e6,
        "first predict": (med[4] - med[3]) / 1e6,
    }


def postgres_stats(client: Client) -> str:
    """Whether the planner has statistics: autovacuum, and when ``versions`` was analysed."""
    with client.platform.engine.connect() as conn:
        autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
        row = conn.exec_driver_sql(
            "SELECT n_live_tup, n_mod_since_analyze, last_analyze, last_autoanalyze "
            "FROM pg_stat_user_tables WHERE relname = 'versions' "
            "AND schemaname = current_schema()"
        ).first()
        reltuples = conn.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE oid = 'versions'::regclass"
        ).scalar()
    if row is None:
        return f"autovacuum={autovacuum}"
    return (
        f"autovacuum={autovacuum}; table versions: {row[0]:,} live rows, last ANALYZE "
        f"{row[2] or 'never'} (auto: {row[3] or 'never'}), planner's reltuples="
        f"{reltuples:.0f}, rows changed since={row[1]:,}: the benchmark ran no ANALYZE (the last "
        "one is modelplane's own refresh as the model grew)"
    )


def run_database(db: str, args: argparse.Namespace, console: Console) -> DbRun:
    run = DbRun(db)
    with tempfile.TemporaryDirectory(prefix=f"mp-bench-{db}-") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        with database(db) as url:
            settings = Settings(home=home, db_url=url)
            client = Client(settings)
            try:
                seconds = populate(client, args.versions, tmp, console)
                run.notes.append(
                    f"populated {args.versions:,} versions through the bus in {seconds:.1f} s "
                    f"({seconds / args.versions * 1000:.2f} ms each)"
                )
                rng = np.random.default_rng(3)
                X = rng.normal(size=(2000, N_FEATURES))
                y = (X[:, :3].sum(axis=1) + rng.normal(size=2000) > 0).astype(int)
                champion = client.log_model(
                    GradientBoostingClassifier(n_estimators=100, random_state=0).fit(X, y),
                    name=MODEL,
                    input_example=X[:5],
                    alias="champion",
                )
                champion_file = client.platform.artifacts.fetch(
                    champion.digest, name=champion.artifact_name, owner="bench"
                )
                with console.status(f"{DATABASES[db]}: reads…"):
                    bench_reads(client, run, args.versions, args.iterations)
                if db == "postgres":
                    run.notes.append(postgres_stats(client))
                with console.status(f"{DATABASES[db]}: registration…"):
                    bench_register(client, run, args.register_iterations, tmp)
                with console.status(f"{DATABASES[db]}: cold loads…"):
                    bench_cold_load(client, run, settings, args.cold_runs, champion_file)
            finally:
                client.close()
    return run


# -- the report -------------------------------------------------------------------------------


def target_ms(op: Op, column: int) -> float | None:
    """The p50 target of ``op`` on database ``column`` (0 SQLite, 1 PostgreSQL)."""
    mlflow = MLFLOW[op.mlflow][column] if op.mlflow else None
    if op.target == "mlflow":
        return mlflow
    if op.target == "half":
        return mlflow / 2 if mlflow is not None else None
    if op.target == "search":
        return min(SEARCH_CEILING_MS, mlflow / 2) if mlflow is not None else SEARCH_CEILING_MS
    if op.target == "cold":
        return COLD_LOAD_CEILING_MS
    return None


def fmt_ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def report(runs: dict[str, DbRun], versions: int, console: Console) -> bool:
    table = Table(
        title=f"modelplane registry vs MLflow 3.17 — one model with {versions:,} versions "
        "(ms unless marked)"
    )
    table.add_column("operation")
    for name in DATABASES.values():
        table.add_column(f"{name}\np50 / p95", justify="right")
    table.add_column("MLflow 3.17 p50\nSQLite / PG", justify="right")
    table.add_column("target (p50)", justify="right")
    table.add_column("pass", justify="center")
    all_pass = True
    for op in OPS:
        cells, verdicts, targets = [], [], []
        for column, db in enumerate(DATABASES):
            timing = runs[db].timings.get(op.key) if db in runs else None
            goal = target_ms(op, column)
            targets.append(f"≤ {fmt_ms(goal)}" if goal is not None else "")
            if timing is None:
                cells.append("—")
                continue
            cells.append(f"{fmt_ms(timing.p50)} / {fmt_ms(timing.p95)}")
            if goal is not None:
                ok = timing.p50 <= goal
                all_pass = all_pass and ok
                verdicts.append("[green]pass[/]" if ok else "[bold red]FAIL[/]")
        mlflow = MLFLOW.get(op.mlflow or "")
        mlflow_cell = f"{fmt_ms(mlflow[0])} / {fmt_ms(mlflow[1])}" if mlflow else ""
        target_cell = targets[0] if targets[0] == targets[1] else " / ".join(targets)
        table.add_row(op.label, *cells, mlflow_cell, target_cell, " ".join(verdicts))
    console.print(table)
    for db, run in runs.items():
        ours, floor = run.timings.get("cold_load"), run.timings.get("cold_floor_noscan")
        console.print(f"[bold]{DATABASES[db]}[/]")
        for note in run.notes:
            console.print(f"  {note}")
        if ours and floor:
            parts = ", ".join(f"{k} {v:.0f}" for k, v in run.cold_breakdown_ms.items())
            console.print(
                f"  cold load: {ours.p50 / floor.p50:.2f}× the floor (skops, scan skipped): "
                f"{ours.p50 - floor.p50:+.0f} ms; median breakdown (ms): {parts}"
            )
    bytecode = (
        "not written (PYTHONDONTWRITEBYTECODE=1)"
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else "written and reused"
    )
    console.print(f"bytecode in fresh processes: {bytecode}")
    return all_pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--versions", type=int, default=10_000, help="versions to populate")
    parser.add_argument("--iterations", type=int, default=200, help="timed calls per read")
    parser.add_argument("--register-iterations", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per variant")
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON (- : stdout)"
    )
    args = parser.parse_args(argv)
    if args.versions < 1000:
        parser.error("--versions must be at least 1000 (a full page of the 10 % tag)")
    console = Console(stderr=args.json == "-")
    if not console.is_terminal:  # piped or captured: room for the whole table
        console.width = max(console.width, 120)
    dbs = list(DATABASES) if args.db == "both" else [args.db]
    runs = {}
    for db in dbs:
        try:
            runs[db] = run_database(db, args, console)
        except sa.exc.OperationalError as exc:
            if args.db != "both":
                raise
            console.print(f"[yellow]{DATABASES[db]} skipped: not reachable ({exc.orig})[/]")
    ok = report(runs, args.versions, console)
    if args.json:
        data: dict[str, Any] = {
            db: {
                "timings": {
                    k: {"p50_ms": t.p50, "p95_ms": t.p95, "n": len(t.samples_ms)}
                    for k, t in run.timings.items()
                },
                "notes": run.notes,
                "cold_breakdown_ms": run.cold_breakdown_ms,
            }
            for db, run in runs.items()
        }
        data["_meta"] = {
            "versions": args.versions,
            "mlflow_p50_ms": MLFLOW,
            "ops": [asdict(op) for op in OPS],
            "all_pass": ok,
        }
        text = json.dumps(data, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
