"""Model runtimes: save a model as one safe file, tell its flavor, load it back ready to predict.

    detect_flavor(model)              "sklearn", "xgboost", "lightgbm", "torch", "onnx", "pyfunc"
    save_model(model, dest_dir)       → SavedModel(flavor, path): one file inside dest_dir
    guess_flavor(path)                the flavor of a saved file, from its name or first bytes
    load_runtime(flavor, path)        → Runtime with predict / predict_proba

Importing this package imports no engine: each flavor's module (and its engine) is imported
the first time a model of that flavor is saved or loaded.
"""

from __future__ import annotations

import types
import zipfile
from pathlib import Path
from typing import Any

from modelplane.errors import ArtifactMissing, InvalidInput
from modelplane.runtimes.base import FLAVORS, Runtime, SavedModel, flavor_module

__all__ = [
    "FLAVORS",
    "Runtime",
    "SavedModel",
    "detect_flavor",
    "guess_flavor",
    "load_runtime",
    "save_model",
]

# top-level package of a class in the model's MRO → flavor
_PACKAGES = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "torch": "torch",
    "onnx": "onnx",
}
# file-name endings → flavor, longest first where they overlap
_SUFFIXES = (
    (".pyfunc.json", "pyfunc"),
    (".torchscript.pt", "torch"),
    (".pt2", "torch"),
    (".lgb.txt", "lightgbm"),
    (".skops", "sklearn"),
    (".onnx", "onnx"),
    (".ubj", "xgboost"),
    (".pkl", "sklearn"),
    (".pickle", "sklearn"),
    (".joblib", "sklearn"),
)
PICKLE_MAGIC = b"\x80"
ZIP_MAGIC = b"PK\x03\x04"
ONNX_MAGIC = b"\x08"  # protobuf field 1 (ir_version), varint


def detect_flavor(model: object) -> str:
    """The flavor of an in-memory model, from its class's modules (no framework is imported)."""
    if isinstance(model, types.FunctionType):
        return "pyfunc"
    if isinstance(model, bytes | bytearray):
        if model[:1] == ONNX_MAGIC:
            return "onnx"
        raise InvalidInput(
            "these bytes are not an ONNX model; pass the model object instead", field="model"
        )
    for cls in type(model).__mro__:
        flavor = _PACKAGES.get(cls.__module__.split(".")[0])
        if flavor:
            return flavor
    raise InvalidInput(
        f"cannot tell the flavor of a {type(model).__module__}.{type(model).__qualname__}; "
        f"supported: {', '.join(sorted(FLAVORS))}",
        field="model",
    )


def save_model(
    model: Any, dest_dir: Path, *, flavor: str | None = None, input_example: Any = None
) -> SavedModel:
    """Write ``model`` as one file inside ``dest_dir`` (created if missing) in a safe format."""
    flavor = flavor or detect_flavor(model)
    module = flavor_module(flavor)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    return SavedModel(flavor=flavor, path=module.save(model, dest_dir, input_example=input_example))


def guess_flavor(path: Path) -> str:
    """The flavor of a saved model file, from its name or, failing that, its first bytes."""
    path = _model_file(Path(path))
    name = path.name.lower()
    for suffix, flavor in _SUFFIXES:
        if name.endswith(suffix):
            return flavor
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError as exc:  # unreadable: a one-line error, not a traceback
        raise InvalidInput(f"cannot read {path.name}: {exc.strerror}", field="path") from None
    if head[:1] == PICKLE_MAGIC:
        return "sklearn"  # a pickle: loading it needs trust=True
    if head.split(b"\n", 1)[0].strip() == b"tree":
        return "lightgbm"
    if head[:1] == b"{" and b"learner" in head[:64]:
        return "xgboost"  # XGBoost JSON or UBJSON
    if head[:4] == ZIP_MAGIC:
        in_zip = _zip_flavor(path)
        if in_zip:
            return in_zip
    if head[:1] == ONNX_MAGIC:
        return "onnx"  # a protobuf starting with ir_version: the last guess made
    raise InvalidInput(
        f"cannot tell the flavor of {path.name}; name it explicitly (one of "
        f"{', '.join(sorted(FLAVORS))})",
        field="flavor",
    )


def load_runtime(flavor: str, path: Path, *, trust: bool = False) -> Runtime:
    """Load the model file at ``path`` (or the one model file in that folder).

    ``trust=True`` allows pickles and skops files holding non-scikit-learn types: only for files
    you made.
    """
    module = flavor_module(flavor)
    return module.load(_model_file(Path(path)), trust=trust)


def _model_file(path: Path) -> Path:
    """The model file ``path`` names: itself, or the one model file in that folder.

    Every other kind of path is one-line `InvalidInput` naming ``path``: a folder with no file
    or several, a folder holding anything but regular files and folders (a fifo would block the
    reads that follow, a socket or device is no model), and a path that is itself a fifo,
    socket or device. Hidden files (``.DS_Store``…) are ignored. Only the path's own name is
    quoted, never the folders above it.
    """
    if not path.exists():  # a dangling symlink too
        raise ArtifactMissing(f"no model file at {path.name}")
    if path.is_file():
        return path
    if not path.is_dir():
        raise InvalidInput(
            f"{path.name} is a {_kind(path)}, not a model file or a folder holding one",
            field="path",
        )
    files: list[Path] = []
    for entry in sorted(path.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            files.append(entry)
        elif not entry.is_dir():
            raise InvalidInput(
                f"{path.name}/{entry.name} is a {_kind(entry)}; a model folder holds only files",
                field="path",
            )
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "no file"
        raise InvalidInput(
            f"{path.name} must hold exactly one model file; found {found}", field="path"
        )
    return files[0]


def _kind(path: Path) -> str:
    """What a path that is neither a regular file nor a folder is, in words."""
    if path.is_fifo():
        return "fifo"
    if path.is_socket():
        return "socket"
    if path.is_block_device() or path.is_char_device():
        return "device"
    if path.is_symlink() and not path.exists():
        return "dangling symlink"
    return "special file"


def _zip_flavor(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return None
    if "schema.json" in names:
        return "sklearn"
    if any(n.endswith("/archive_format") for n in names):
        return "torch"  # torch.export
    if any("/code/" in n for n in names) and any(n.endswith("/constants.pkl") for n in names):
        return "torch"  # TorchScript
    return None
