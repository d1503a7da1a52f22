"""Flavor faults, each as a class: strided outputs on every encoder, categoricals of LightGBM and
scikit-learn through ``load_model``, and every kind of path where a model file is expected."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from modelplane.cache.codec import decode_outputs, encode_outputs
from modelplane.cache.keys import prediction_key
from modelplane.client import Client, LoadedModel
from modelplane.errors import InvalidInput
from modelplane.runtimes import guess_flavor, load_runtime, save_model
from modelplane.serving import oip
from modelplane.serving.grpc.server import encode_infer_response as grpc_encode
from modelplane.serving.served import PREDICT, PROBA, _predictor
from modelplane.serving.types import InferResult

Array = np.ndarray[Any, Any]


def strided() -> dict[str, Array]:
    """Arrays no encoder may assume to be C-contiguous, native-endian or owning their data."""
    base = np.arange(24, dtype=np.float64).reshape(6, 4) / 7
    text = np.empty(6, dtype=object)
    text[:] = ["a", "b\u00e9", "c", "d", "e", "f"]
    return {
        "fortran": np.asfortranarray(base),
        "transposed": base.T,
        "reversed": base[::-1],
        "every_other_column": base[:, ::2],
        "one_column": base[:, 1],
        "broadcast": np.broadcast_to(base[0], (6, 4)),
        "big_endian": base.astype(">f8"),
        "float32_transposed": base.astype(np.float32).T,
        "int_fortran": np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
        "bool_step": (np.arange(10) % 3 == 0)[::2],
        "read_only": np.frombuffer(base.tobytes(), dtype=np.float64).reshape(6, 4)[:, ::3],
        "objects_transposed": text.reshape(2, 3).T,
    }


CASES = list(strided())


def result(array: Array) -> InferResult:
    return InferResult(model="m", version=1, outputs={"out": array}, id="r")


@pytest.mark.parametrize("case", CASES)
class TestStridedOutputsOnEveryEncoder:
    def test_oip_json(self, case: str) -> None:
        array = strided()[case]
        body, _ = oip.encode_infer_response(result(array), model_name="m")
        out = orjson.loads(body)["outputs"][0]
        assert out["shape"] == list(array.shape)
        back = np.asarray(out["data"], dtype=oip.DATATYPES[out["datatype"]])
        assert back.reshape(out["shape"]).tolist() == array.tolist()

    def test_oip_binary(self, case: str) -> None:
        array = strided()[case]
        body, headers = oip.encode_infer_response(
            result(array), model_name="m", binary_outputs=True
        )
        length = int(headers[oip.HEADER_LENGTH])
        out = orjson.loads(body[:length])["outputs"][0]
        back = oip.decode_raw_tensor(
            body[length:], out["datatype"], out["shape"], name="out", field="out"
        )
        if back.dtype == object:
            back = np.asarray([v.decode() for v in back.ravel()], dtype=object).reshape(back.shape)
        assert back.tolist() == array.tolist()

    @pytest.mark.parametrize("raw", [False, True])
    def test_grpc(self, case: str, raw: bool) -> None:
        array = strided()[case]
        reply = grpc_encode(result(array), raw=raw)
        out = reply.outputs[0]
        assert list(out.shape) == list(array.shape)
        if reply.raw_output_contents:
            back = oip.decode_raw_tensor(
                reply.raw_output_contents[0], out.datatype, list(out.shape), name="out", field="out"
            )
            flat = [v.decode() if isinstance(v, bytes) else v for v in back.ravel().tolist()]
        else:
            field = out.contents.ListFields()[0][1]
            flat = [v.decode() if isinstance(v, bytes) else v for v in field]
        assert flat == array.ravel().tolist()

    def test_prediction_cache_codec(self, case: str) -> None:
        array = strided()[case]
        back = decode_outputs(encode_outputs({"out": array}))["out"]
        assert back.flags.c_contiguous
        assert back.shape == array.shape
        assert back.tolist() == array.tolist()

    def test_prediction_cache_key_ignores_the_layout(self, case: str) -> None:
        array = strided()[case]
        copy = np.array(array, order="C", dtype=array.dtype.newbyteorder("="))
        assert prediction_key("m", 1, {"x": array}) == prediction_key("m", 1, {"x": copy})

    def test_runtime_outputs_enter_serving_c_contiguous(self, case: str) -> None:
        """``_predictor`` is where every runtime output enters serving: after it, /predict's
        plain ``orjson.dumps(..., OPT_SERIALIZE_NUMPY)`` takes any numeric output."""
        array = strided()[case]
        runtime = SimpleNamespace(predict=lambda batch: array, predict_proba=lambda batch: array)
        loaded = cast(LoadedModel, SimpleNamespace(runtime=runtime, signature=None))
        out = _predictor(loaded, (PREDICT, PROBA), PREDICT)(np.zeros((1, 1)))
        for value in out.values():
            assert value.flags.c_contiguous
            assert value.dtype.isnative
            assert value.tolist() == array.tolist()
            # what /predict answers with; object arrays (string labels) need the fallback
            doc = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=oip.json_default)
            assert np.asarray(orjson.loads(doc), dtype=value.dtype).tolist() == array.tolist()
            if value.dtype != object:
                assert orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY) == doc


class TestXGBoostProbabilities:
    def test_predict_proba_of_several_rows_is_c_contiguous(self, tmp_path: Path) -> None:
        xgb = pytest.importorskip("xgboost")
        rng = np.random.default_rng(0)
        x = rng.normal(size=(80, 3))
        y = (x[:, 0] > 0).astype(int)
        model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
        runtime = load_runtime("xgboost", save_model(model, tmp_path).path)
        proba = runtime.predict_proba(x[:3])
        assert proba.flags.c_contiguous
        np.testing.assert_array_equal(proba, model.predict_proba(x[:3]))


# -- categoricals through load_model ---------------------------------------------------------
CITIES = ["Paris", "Lyon", "Nice", "Brest"]


def city_frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, Array]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "city": pd.Categorical(rng.choice(CITIES, n), categories=CITIES),
            "amount": rng.normal(size=n),
        }
    )
    y = ((frame["city"] == "Nice") | (frame["amount"] > 1)).astype(int).to_numpy()
    return frame, y


def categorical_models() -> list[Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    models: list[Any] = [
        HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=20)
    ]
    try:
        import lightgbm as lgb
    except ImportError:
        return models
    return [lgb.LGBMClassifier(n_estimators=20, min_child_samples=5, verbose=-1), *models]


@pytest.mark.parametrize("model", categorical_models(), ids=lambda m: type(m).__name__)
class TestCategoricalFlavors:
    def test_signature_records_the_categories(self, client: Client, model: Any) -> None:
        frame, y = city_frame(300)
        version = client.log_model(model.fit(frame, y), name="cities", input_example=frame)
        assert version.signature is not None
        assert version.signature["inputs"][0] == {
            "name": "city",
            "dtype": "string",
            "shape": [-1],
            "categories": CITIES,
        }

    @pytest.mark.parametrize("given", ["strings", "bytes", "categories_reordered"])
    def test_load_model_answers_as_the_fitted_model(
        self, client: Client, model: Any, given: str
    ) -> None:
        frame, y = city_frame(300)
        client.log_model(model.fit(frame, y), name="cities", input_example=frame)
        rows, _ = city_frame(12, seed=1)
        want = model.predict_proba(rows)
        city: Any = rows["city"].astype(object)
        if given == "bytes":
            city = city.map(str.encode)
        elif given == "categories_reordered":
            city = pd.Categorical(rows["city"], categories=CITIES[::-1])
        loaded = client.load_model("cities")
        got = loaded.predict_proba(pd.DataFrame({"city": city, "amount": rows["amount"]}))
        np.testing.assert_array_equal(got, want)


# -- every kind of path ----------------------------------------------------------------------
def model_file(tmp_path: Path) -> Path:
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(30, 2))
    return save_model(LogisticRegression().fit(x, x[:, 0] > 0), tmp_path / "made").path


def make_path(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "given" / kind
    path.parent.mkdir()
    if kind == "empty_dir":
        path.mkdir()
    elif kind == "dir_with_two_files":
        path.mkdir()
        (path / "a.skops").write_bytes(model_file(tmp_path).read_bytes())
        (path / "b.onnx").write_bytes(b"\x08\x07")
    elif kind == "dir_with_only_a_subdir":
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "model.skops").write_bytes(model_file(tmp_path).read_bytes())
    elif kind == "dir_with_only_hidden_files":
        path.mkdir()
        (path / ".model.skops").write_bytes(model_file(tmp_path).read_bytes())
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir_with_a_fifo":
        path.mkdir()
        (path / "model.skops").write_bytes(model_file(tmp_path).read_bytes())
        os.mkfifo(path / "notes")
    elif kind == "dir_with_a_dangling_symlink":
        path.mkdir()
        (path / "model.skops").write_bytes(model_file(tmp_path).read_bytes())
        (path / "old").symlink_to(tmp_path / "gone")
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(str(path))
        except OSError:  # a path too long for a unix socket: a shorter one in the same place
            pytest.skip("cannot bind a unix socket here")
        finally:
            sock.close()
    return path


BAD_KINDS = [
    "empty_dir",
    "dir_with_two_files",
    "dir_with_only_a_subdir",
    "dir_with_only_hidden_files",
    "fifo",
    "dir_with_a_fifo",
    "dir_with_a_dangling_symlink",
    "socket",
]


class TestModelPaths:
    def test_a_folder_with_one_model_file_is_that_file(self, tmp_path: Path) -> None:
        folder = model_file(tmp_path).parent
        assert guess_flavor(folder) == "sklearn"
        assert load_runtime("sklearn", folder).predict(np.zeros((1, 2))).shape == (1,)

    @pytest.mark.parametrize("kind", BAD_KINDS)
    @pytest.mark.parametrize("call", ["guess_flavor", "load_runtime"])
    def test_any_other_path_is_one_line_naming_path(
        self, tmp_path: Path, kind: str, call: str
    ) -> None:
        path = make_path(kind, tmp_path)
        with pytest.raises(InvalidInput) as info:
            guess_flavor(path) if call == "guess_flavor" else load_runtime("sklearn", path)
        message = str(info.value)
        assert info.value.field == "path"
        assert "\n" not in message
        assert str(tmp_path) not in message  # the name given, not the folders above it
        assert kind in message

    @pytest.mark.parametrize("kind", [*BAD_KINDS, "symlink_to_file", "symlink_to_dir"])
    def test_register_file_refuses_in_one_line_and_registers_nothing(
        self, client: Client, tmp_path: Path, kind: str
    ) -> None:
        if kind.startswith("symlink"):
            target = model_file(tmp_path)
            path = tmp_path / kind
            path.symlink_to(target if kind == "symlink_to_file" else target.parent)
        else:
            path = make_path(kind, tmp_path)
        with pytest.raises(InvalidInput) as info:
            client.register_file("fraud", path)
        assert info.value.field == "path"
        assert "\n" not in str(info.value)
        assert client.list_models().items == []

    @pytest.mark.parametrize("kind", ["empty_dir", "fifo", "dir_with_two_files"])
    def test_the_cli_says_one_line_and_exits_2(self, tmp_path: Path, kind: str) -> None:
        from modelplane.cli.main import app

        path = make_path(kind, tmp_path)
        result = CliRunner().invoke(
            app, ["--home", str(tmp_path / "home"), "models", "register", "fraud", str(path)]
        )
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, result.output
        assert kind in lines[0]
