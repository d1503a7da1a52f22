"""The floor's own venv for ``benchmarks/serving.py``: Starlette, uvicorn[standard], scikit-learn.

Created once under ``benchmarks/.floor-venv`` (git-ignored) with the versions pinned in the
repository's ``constraints.txt`` (the same scikit-learn and numpy that pickled the model), and
rebuilt only when those pins or the Python version change (a stamp file remembers). The floor
server (``_floor_server.py``) then runs without modelplane's imports in its process, so its
resident memory is the floor's own.

When the venv cannot be built (no package index, no wheels), :func:`floor_python` says why and
the caller falls back to modelplane's own interpreter.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["FLOOR_VENV", "PACKAGES", "floor_python"]

HERE = Path(__file__).resolve().parent
FLOOR_VENV = HERE / ".floor-venv"
CONSTRAINTS = HERE.parent / "constraints.txt"
#: What the floor needs: the web stack (uvloop and httptools come with uvicorn[standard]) and
#: what unpickling the benchmark's GradientBoostingClassifier needs.
PACKAGES = ("starlette", "uvicorn[standard]", "scikit-learn", "numpy")
#: Imported once after the install, as a check that the venv works.
CHECK = "import starlette, uvicorn, uvloop, httptools, sklearn.ensemble, numpy"


def _stamp(constraints: Path) -> str:
    text = constraints.read_text(encoding="utf-8") if constraints.exists() else ""
    pins = sorted(ln.strip() for ln in text.splitlines() if re.match(r"^[A-Za-z0-9_.\-]+==", ln))
    key = "\n".join([sys.version, *PACKAGES, *pins])
    return hashlib.sha256(key.encode()).hexdigest()


def floor_python(
    venv: Path = FLOOR_VENV, constraints: Path = CONSTRAINTS, timeout_s: float = 600
) -> tuple[str | None, str]:
    """The floor venv's interpreter (built if missing or stale), and a line saying what was
    done; ``(None, why)`` when it cannot be built."""
    python = venv / "bin" / "python"
    stamp_file = venv / ".stamp"
    stamp = _stamp(constraints)
    if python.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        return str(python), f"floor venv {venv} (reused)"
    cmds = [[sys.executable, "-m", "venv", "--clear", str(venv)]]
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if constraints.exists():
        pip += ["-c", str(constraints)]
    cmds += [[*pip, *PACKAGES], [str(python), "-c", CHECK]]
    for cmd in cmds:
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"could not build the floor venv ({' '.join(cmd[:4])}…): {exc}"
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            return None, f"could not build the floor venv ({cmd[2]} …): {' / '.join(tail)}"
    stamp_file.write_text(stamp + "\n")
    return str(python), f"floor venv {venv} (built: {', '.join(PACKAGES)}, pinned)"
