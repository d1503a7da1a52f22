"""What a ``.skops`` file may hold without an admin's trust: an allowlist, never a denylist.

skops builds objects from a file without pickle, but it can still rebuild *references* to
any importable callable: ``functools.partial(numpy.save, "x.pth")`` or ``os.system`` in a
``FunctionTransformer`` is a file writer or a shell that runs at every ``predict``. So the
types a file names (skops reports the ones it does not trust itself: it trusts only plain
values, numpy/scipy ufuncs, numpy dtypes and bit generators, and — with modelplane's start-up
shortcut — no estimator at all) are each checked here, *before* anything is loaded:

* **estimator classes of scikit-learn**, by name: the name must resolve, in scikit-learn's own
  modules (not its tests or vendored code), to a subclass of ``BaseEstimator`` defined there;
* **scikit-learn's fitted internals**, a fixed list (trees, tree predictors, neighbour trees,
  distance metrics, losses and links);
* **sparse matrices** of scipy and plain containers (dict, list, ``collections``…);
* **pure functions**, a short fixed list (``PURE_FUNCTIONS``): none reads or writes files,
  opens sockets, starts processes or reaches the interpreter, whatever arguments it gets
  (numpy and scipy ufuncs are trusted by skops itself, for the same reason);
* ``functools.partial`` only when every function in the file is one of those: a partial binds
  arguments, and binding arguments to a pure function leaves it pure. (scikit-learn's own
  ``HistGradientBoosting*`` with categorical features stores ``partial(check_array, …)``.)

Anything else — ``builtins`` functions (``eval``, ``getattr``, ``open``), ``operator`` callers,
``os``/``posix``/``subprocess`` functions, numpy's I/O functions, a user's own class or
function, a name this list does not know — is *untrusted*: it needs ``trust`` granted by an
admin, which is recorded on the version.

After loading (which constructs objects and runs none of their methods), ``check_loaded``
refuses parameters that turn an allowed estimator into an I/O gadget: a text vectorizer whose
``input`` is ``"filename"`` or ``"file"`` reads the path each request names, and a pipeline's
``memory`` caches to disk; and it bounds-checks the node indices of histogram-gradient-boosting
predictors, which scikit-learn follows without checks (a crafted file would read outside them).
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from modelplane.errors import UntrustedArtifact

__all__ = ["PURE_FUNCTIONS", "check_loaded", "is_allowed", "refused"]

PURE_FUNCTIONS = frozenset(
    {
        "numpy.clip",
        "numpy.nan_to_num",
        "numpy.round",
        "numpy.around",
        "numpy.asarray",
        "numpy.ravel",
        "numpy.transpose",
        "sklearn.utils.validation.check_array",
    }
)
_CONTAINERS = frozenset(
    {
        "builtins.bool",
        "builtins.bytes",
        "builtins.complex",
        "builtins.dict",
        "builtins.float",
        "builtins.frozenset",
        "builtins.int",
        "builtins.list",
        "builtins.NoneType",
        "builtins.set",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "collections.Counter",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
    }
)
_SKLEARN_INTERNALS = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.utils._bunch.Bunch",
    }
)
_PATTERNS = (
    re.compile(r"sklearn\.metrics\._dist_metrics\.[A-Za-z]+Distance(32|64)"),
    re.compile(r"sklearn\._loss\.(loss|link)\.[A-Za-z]+"),
    re.compile(
        r"scipy\.sparse\._(csr|csc|coo|bsr|dia|dok|lil)\.(csr|csc|coo|bsr|dia|dok|lil)_(matrix|array)"
    ),
)
# scikit-learn modules whose classes are not models: test helpers and vendored code.
_NOT_MODELS = re.compile(r"(^|\.)(tests?|_testing|externals|_build_utils)(\.|$)")
_PARTIAL = "functools.partial"


def is_allowed(type_name: str) -> bool:
    """Whether one type or function named in a file may be loaded without trust."""
    if type_name in _CONTAINERS or type_name in _SKLEARN_INTERNALS or type_name in PURE_FUNCTIONS:
        return True
    if any(p.fullmatch(type_name) for p in _PATTERNS):
        return True
    return _is_sklearn_estimator(type_name)


def refused(type_names: list[str]) -> list[str]:
    """The names in a file that need trust (``functools.partial`` only beside a non-pure one)."""
    out = [t for t in type_names if t != _PARTIAL and not is_allowed(t)]
    if _PARTIAL in type_names and out:
        out.append(_PARTIAL)
    return sorted(out)


def _is_sklearn_estimator(type_name: str) -> bool:
    module_name, _, attr = type_name.rpartition(".")
    if not module_name.startswith("sklearn.") or _NOT_MODELS.search(module_name):
        return False
    if not re.fullmatch(r"[A-Za-z_][\w.]*", module_name) or not attr.isidentifier():
        return False
    try:
        from sklearn.base import BaseEstimator

        module = importlib.import_module(module_name)  # scikit-learn's own module
    except ImportError:
        return False
    found = getattr(module, attr, None)
    return (
        isinstance(found, type)
        and issubclass(found, BaseEstimator)
        and found.__module__ == module_name
        and found.__qualname__ == attr
    )


def check_loaded(model: Any, file_name: str) -> None:
    """Refuse allowed estimators configured to do I/O, and out-of-range tree predictor nodes."""
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - the sklearn flavor always has it
        return
    if not isinstance(model, BaseEstimator):
        return
    for key, value in model.get_params(deep=True).items():
        leaf = key.rsplit("__", 1)[-1]
        if leaf == "input" and value in ("filename", "file"):
            raise UntrustedArtifact(
                f"{file_name}: {key}={value!r} makes the model read the files requests name; "
                "only input='content' loads without trust"
            )
        if leaf == "memory" and value is not None:
            raise UntrustedArtifact(
                f"{file_name}: {key} caches to disk; save the model with memory=None"
            )
    for estimator in [model, *model.get_params(deep=True).values()]:
        for predictors in getattr(estimator, "_predictors", None) or ():
            for predictor in predictors:
                _check_nodes(predictor, getattr(estimator, "n_features_in_", None), file_name)


def _check_nodes(predictor: Any, n_features: int | None, file_name: str) -> None:
    nodes = getattr(predictor, "nodes", None)
    if nodes is None or not len(nodes):
        return
    n = len(nodes)
    leaf = nodes["is_leaf"].astype(bool)
    inner = nodes[~leaf]
    bad = ((inner["left"] >= n) | (inner["right"] >= n)).any()
    if n_features is not None:
        bad = bad or (inner["feature_idx"] >= n_features).any()
    if bad:
        raise UntrustedArtifact(
            f"{file_name}: a tree predictor's node indices point outside the tree; the file is "
            "corrupt or crafted"
        )
