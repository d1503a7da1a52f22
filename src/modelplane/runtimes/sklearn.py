"""scikit-learn: saved with skops' safe format; a pickle or joblib file only with ``trust=True``.

A ``.skops`` file is a zip of JSON and arrays: loading it builds objects without running pickle.
Every type and function the file names is checked against an allowlist
(:mod:`modelplane.runtimes.skops_policy`: scikit-learn's estimators by name, its fitted
internals, a few pure functions); anything else — a callable that could reach the filesystem,
the network, processes or the interpreter, or a user's own class — needs ``trust=True``, which
only an admin grants and the version records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelplane.errors import InvalidInput, UntrustedArtifact
from modelplane.runtimes.base import import_engine, no_proba, to_frame
from modelplane.runtimes.skops_policy import check_loaded, refused

__all__ = ["SklearnRuntime", "load", "save", "untrusted_types"]

FLAVOR = "sklearn"
FILE_NAME = "model.skops"
ZIP_MAGIC = b"PK\x03\x04"


class SklearnRuntime:
    """A fitted scikit-learn estimator or pipeline.

    **One finiteness check, not three.** scikit-learn checks every input for NaN and infinity
    each time an estimator validates it: a GradientBoostingClassifier does it in
    ``decision_function``, again in its initial estimator and again in its trees — ~19 µs of a
    ~150 µs one-row ``predict`` (measured here, scikit-learn 1.9). For an estimator of
    scikit-learn's own that refuses NaN and was given no other estimator (no pipeline, search or
    wrapper around one; no transformer), given a numeric numpy array whose every value is finite
    and within float32's range (an estimator may cast to float32, as trees do), the runtime
    checks that once (~2 µs) and predicts with scikit-learn's ``assume_finite`` set for that
    call: scikit-learn would have found nothing. Any other input — a NaN, an infinity, a value
    float32 cannot hold, a DataFrame, an object array — and any other estimator go through
    scikit-learn's own checks unchanged, so answers and refusals (and their messages) are
    scikit-learn's.
    """

    flavor = FLAVOR

    def __init__(self, model: Any) -> None:
        self.model = model
        self._predict = model.predict
        self._predict_proba = getattr(model, "predict_proba", None)
        self._own_finite_check = _checks_finite_itself(model)

    @property
    def has_proba(self) -> bool:
        return self._predict_proba is not None

    def predict(self, batch: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self._call(self._predict, to_frame(batch)))

    def predict_proba(self, batch: Any) -> np.ndarray[Any, Any]:
        if self._predict_proba is None:
            raise no_proba(FLAVOR, type(self.model).__name__)
        return np.asarray(self._call(self._predict_proba, to_frame(batch)))

    def _call(self, method: Any, X: Any) -> Any:
        if self._own_finite_check and _finite_in_float32(X):
            return _assuming_finite(method, X)
        return method(X)


_F32_MAX = float(np.finfo(np.float32).max)


def _finite_in_float32(X: Any) -> bool:
    """A non-empty numeric ndarray whose every value is finite and float32 can hold (a NaN
    fails the comparison too)."""
    if type(X) is not np.ndarray or not X.size:
        return False
    kind = X.dtype.kind
    if kind in "iub":
        return True
    return kind == "f" and float(np.maximum.reduce(np.abs(X), axis=None)) <= _F32_MAX


def _checks_finite_itself(model: Any) -> bool:
    """Whether the runtime may check the input for NaN/infinity itself (see SklearnRuntime):
    only an estimator of scikit-learn's own that refuses NaN and holds no estimator given to it.
    Not a user's class (its ``predict`` may take NaN whatever its tags say), not one with an
    estimator among its parameters (a search refit to an imputing pipeline, a calibrated or
    bagged pipeline: what reaches the inner estimators is not the input), not a transformer.
    Ensembles that build their own inner estimators (gradient boosting's trees) qualify; the
    float32 range check of ``_call`` covers their casts."""
    try:
        from sklearn.base import BaseEstimator
        from sklearn.utils import get_tags

        return (
            isinstance(model, BaseEstimator)
            and type(model).__module__.startswith("sklearn.")
            and not hasattr(model, "transform")
            and not any(isinstance(p, BaseEstimator) for p in model.get_params(deep=True).values())
            and not get_tags(model).input_tags.allow_nan
        )
    except Exception:  # an estimator too old or too odd for tags and params: leave it alone
        return False


try:  # the thread's own settings, toggled for one call (config_context costs ~6 µs a call)
    from sklearn._config import _get_threadlocal_config
except ImportError:  # pragma: no cover - a scikit-learn without it: the public way
    _get_threadlocal_config = None


def _assuming_finite(method: Any, X: np.ndarray[Any, Any]) -> Any:
    if _get_threadlocal_config is None:  # pragma: no cover
        import sklearn

        with sklearn.config_context(assume_finite=True):
            return method(X)
    config = _get_threadlocal_config()
    if config.get("assume_finite"):
        return method(X)
    config["assume_finite"] = True
    try:
        return method(X)
    finally:
        config["assume_finite"] = False


def save(model: Any, dest_dir: Path, *, input_example: Any = None) -> Path:
    sio = _skops_io()
    path = dest_dir / FILE_NAME
    sio.dump(model, path)
    return path


def load(path: Path, *, trust: bool = False) -> SklearnRuntime:
    with path.open("rb") as f:
        head = f.read(4)
    if head != ZIP_MAGIC:  # anything that is not a skops zip is taken for a pickle
        return SklearnRuntime(_load_pickle(path, trust=trust))
    sio = _skops_io()
    untrusted = untrusted_types(path)
    unsafe = refused(untrusted)
    if unsafe and not trust:
        raise UntrustedArtifact(
            f"{path.name} names callables or types outside the allowlist: {', '.join(unsafe)}; "
            "they could reach files, processes or the interpreter at predict time. Only an "
            "admin can trust it (trust=True / --trust), for files they made"
        )
    model = sio.load(path, trusted=untrusted)
    if not trust:
        check_loaded(model, path.name)
    return SklearnRuntime(model)


def _skops_io() -> Any:
    """Import ``skops.io`` without its start-up scan of every scikit-learn estimator.

    At import skops builds its default trusted-type list with ``sklearn.utils.all_estimators()``,
    which imports every scikit-learn module — and through ``sklearn.externals.array_api_compat``
    torch itself when it is installed: measured here, 2.7 s of a 4.0 s cold load. That default
    list does not decide anything for us: every type skops reports as untrusted is checked
    against the allowlist of :mod:`modelplane.runtimes.skops_policy` and passed back
    explicitly. So the scan is skipped, and ``import skops.io`` takes ~0.2 s.
    """
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    sk_utils: Any = import_engine("sklearn.utils", "sklearn")
    original = sk_utils.all_estimators
    sk_utils.all_estimators = lambda *args, **kwargs: []
    try:
        return import_engine("skops.io", "sklearn")
    finally:
        sk_utils.all_estimators = original


def untrusted_types(path: Path) -> list[str]:
    """The types in a ``.skops`` file that skops does not trust by default."""
    sio = _skops_io()
    try:
        types: list[str] = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a zip that is not a skops file: skops raises several kinds
        raise InvalidInput(f"{path.name} is not a readable skops file: {exc}") from exc
    return types


def _load_pickle(path: Path, *, trust: bool) -> Any:
    if not trust:
        raise UntrustedArtifact(
            f"{path.name} is a pickle; pickles run code when loaded; pass trust=True / --trust "
            "only for files you made (save scikit-learn models with skops instead)"
        )
    joblib = import_engine("joblib", "sklearn")
    return joblib.load(path)  # joblib reads plain pickles as well as its own files
