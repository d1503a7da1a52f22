"""A real ``modelplane worker`` process: it keeps the model timeline up to date and stops on
SIGTERM, handing its relay's lease over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from modelplane.bootstrap import bootstrap
from modelplane.config import Settings
from modelplane.events.projections import timeline
from modelplane.events.tables import event_relays
from modelplane.registry import commands as rc
from tests.e2e.harness import wait_for


def start_worker(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env["MODELPLANE_HOME"] = str(home)
    return subprocess.Popen(
        [sys.executable, "-m", "modelplane.cli.main", "worker", "--poll-s", "0.05", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_worker_projects_new_events_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform = bootstrap(Settings(home=home))
    worker = start_worker(home, "--json")
    try:
        platform.bus.handle(rc.RegisterModel(name="fraud"))
        platform.bus.handle(rc.SetTag(model="fraud", key="team", value="risk"))
        wait_for(lambda: len(timeline(platform.engine, "fraud")) == 2, "the timeline rows")
        assert [r["type"] for r in timeline(platform.engine, "fraud")] == [
            "ModelRegistered",
            "TagSet",
        ]
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        stats = json.loads(out)
        assert stats["published"] == 2
        assert stats["handled"] == {"projection:model-timeline": 2}
        with platform.engine.connect() as conn:
            holder = conn.execute(event_relays.select()).mappings().one()["holder"]
        assert holder is None  # the lease is handed over: another worker takes over at once
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        platform.close()


def test_an_unknown_part_exits_2_with_one_line(tmp_path: Path) -> None:
    worker = start_worker(tmp_path / "home", "--only", "relay,nope")
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "unknown part(s) for --only: nope (known: relay, model-timeline)" in lines[0]
