"""Every entry point answers exactly what ``load_model(...).predict`` answers, for any column type.

A property test over random mixed-type DataFrame models (float32/64, signed and unsigned ints,
bool, strings, string and integer categoricals; a scikit-learn pipeline of a ColumnTransformer
with a OneHotEncoder, fitted on random data), asked through a real ``modelplane serve``
process by REST JSON, REST binary tensors, gRPC ModelInfer, ``/predict`` and Triton's own HTTP
client. String columns used to reach the model as ``bytes`` over OIP, which a OneHotEncoder
takes for an unknown category: another class, silently, with status 200.

One server process serves the whole module; each example registers its model while it runs
(the server reads a model it does not know on its first request).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelplane.client import Client
from modelplane.config import Settings
from modelplane.serving.grpc import grpc_predict_v2_pb2 as pb
from modelplane.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.e2e.harness import Server

Array = np.ndarray[Any, Any]
HEADER = "Inference-Header-Content-Length"
NUMERIC = [
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
]
KINDS = [*NUMERIC, "string", "category", "int_category"]
#: OIP datatype → (numpy dtype, gRPC typed contents field)
WIRE: dict[str, tuple[str, str]] = {
    "BOOL": ("bool", "bool_contents"),
    "INT8": ("int8", "int_contents"),
    "INT16": ("int16", "int_contents"),
    "INT32": ("int32", "int_contents"),
    "INT64": ("int64", "int64_contents"),
    "UINT8": ("uint8", "uint_contents"),
    "UINT16": ("uint16", "uint_contents"),
    "UINT32": ("uint32", "uint_contents"),
    "UINT64": ("uint64", "uint64_contents"),
    "FP32": ("float32", "fp32_contents"),
    "FP64": ("float64", "fp64_contents"),
    "BYTES": ("object", "bytes_contents"),
}
WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=6)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tensor-types")


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    Client(Settings(home=home)).close()  # the database exists before the server starts
    s = Server(home)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def registry(home: Path, server: Server) -> Iterator[Client]:
    client = Client(Settings(home=home))
    yield client
    client.close()


@pytest.fixture(scope="module")
def stub(server: Server) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


# -- the models ------------------------------------------------------------------------------
@dataclass
class Case:
    kinds: list[str]
    words: list[str]
    str_labels: bool
    classes: int
    rows: int
    seed: int
    unseen: bool

    def frame(self, n: int, rng: np.random.Generator, *, unseen: bool = False) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        for i, kind in enumerate(self.kinds):
            name = f"c{i}_{kind}"
            if kind == "string":
                pool = [*self.words, "\u00abnever seen\u00bb"] if unseen else self.words
                columns[name] = pd.Series(
                    rng.choice(np.asarray(pool, dtype=object), n), dtype=object
                )
            elif kind == "category":
                values = rng.choice(np.asarray(self.words, dtype=object), n)
                columns[name] = pd.Categorical(values, categories=self.words)
            elif kind == "int_category":
                codes = [30, 10, 20]
                columns[name] = pd.Categorical(rng.choice(codes, n), categories=codes)
            elif kind == "bool":
                columns[name] = rng.random(n) < 0.5
            elif kind.startswith(("int", "uint")):
                low = 0 if kind.startswith("u") else -50
                columns[name] = rng.integers(low, 100, n).astype(kind)
            else:
                columns[name] = (rng.normal(size=n) * 10).astype(kind)
        return pd.DataFrame(columns)

    def pipeline(self, frame: pd.DataFrame) -> Pipeline:
        text = [
            c
            for c, k in zip(frame.columns, self.kinds, strict=True)
            if k in ("string", "category", "int_category")
        ]
        numbers = [c for c in frame.columns if c not in text]
        steps = []
        if text:
            steps.append(("onehot", OneHotEncoder(handle_unknown="ignore"), text))
        if numbers:
            steps.append(("scale", StandardScaler(), numbers))
        return Pipeline(
            [("columns", ColumnTransformer(steps)), ("model", LogisticRegression(max_iter=300))]
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    return Case(
        kinds=draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=5)),
        words=draw(st.lists(WORDS, min_size=2, max_size=4, unique=True)),
        str_labels=draw(st.booleans()),
        classes=draw(st.integers(2, 3)),
        rows=draw(st.integers(1, 6)),
        seed=draw(st.integers(0, 2**32 - 1)),
        unseen=draw(st.booleans()),
    )


NAMES = itertools.count()


def register(registry: Client, case: Case) -> tuple[str, pd.DataFrame]:
    rng = np.random.default_rng(case.seed)
    train = case.frame(80, rng)
    labels = np.arange(80) % case.classes
    rng.shuffle(labels)
    y = np.asarray(["no", "yes", "maybe"], dtype=object)[labels] if case.str_labels else labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a random target may not converge: any fit will do
        model = case.pipeline(train).fit(train, y)
    name = f"mixed{next(NAMES)}"
    registry.log_model(model, name=name, input_example=train)
    return name, case.frame(case.rows, rng, unseen=case.unseen)


# -- the entry points -----------------------------------------------------------------------
def wire_columns(url: str, name: str, rows: pd.DataFrame) -> list[tuple[str, str, Array]]:
    """(name, OIP datatype, values) per input, datatypes as the model's metadata says."""
    meta = httpx.get(f"{url}/v2/models/{name}", timeout=10).json()
    out = []
    for spec in meta["inputs"]:
        column = rows[spec["name"]]
        dtype = WIRE[spec["datatype"]][0]
        values = np.asarray(column.astype(object) if dtype == "object" else column, dtype=dtype)
        out.append((spec["name"], spec["datatype"], values))
    return out


def raw_bytes(datatype: str, values: Array) -> bytes:
    """The binary extension's encoding, written from its spec (not the server's encoder)."""
    if datatype == "BYTES":
        parts = [str(v).encode() for v in values]
        return b"".join(len(p).to_bytes(4, "little") + p for p in parts)
    if datatype == "BOOL":
        return values.astype(np.uint8).tobytes()
    return values.astype(values.dtype.newbyteorder("<")).tobytes()


def from_raw(datatype: str, shape: list[int], data: bytes) -> Array:
    if datatype != "BYTES":
        return np.frombuffer(data, dtype=np.dtype(WIRE[datatype][0]).newbyteorder("<")).reshape(
            shape
        )
    items, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "little")
        items.append(data[pos + 4 : pos + 4 + size].decode())
        pos += 4 + size
    return np.asarray(items, dtype=object).reshape(shape)


def rest_json(url: str, name: str, rows: pd.DataFrame) -> dict[str, Array]:
    """No ``outputs`` in the request: every output of the model comes back (OIP)."""
    inputs = [
        {
            "name": n,
            "datatype": dt,
            "shape": [len(v)],
            "data": [str(x) for x in v] if dt == "BYTES" else v.tolist(),
        }
        for n, dt, v in wire_columns(url, name, rows)
    ]
    r = httpx.post(f"{url}/v2/models/{name}/infer", json={"inputs": inputs}, timeout=30)
    assert r.status_code == 200, r.text
    return {o["name"]: from_json(o) for o in r.json()["outputs"]}


def from_json(out: dict[str, Any]) -> Array:
    """An output's JSON data in its datatype (an FP32 is written as the shortest float32)."""
    return np.asarray(out["data"], dtype=WIRE[out["datatype"]][0]).reshape(out["shape"])


def rest_binary(url: str, name: str, rows: pd.DataFrame) -> dict[str, Array]:
    inputs, chunks = [], []
    for n, dt, values in wire_columns(url, name, rows):
        chunk = raw_bytes(dt, values)
        inputs.append(
            {
                "name": n,
                "datatype": dt,
                "shape": [len(values)],
                "parameters": {"binary_data_size": len(chunk)},
            }
        )
        chunks.append(chunk)
    header = orjson.dumps(
        {
            "inputs": inputs,
            "outputs": [
                {"name": "predict", "parameters": {"binary_data": True}},
                {"name": "predict_proba", "parameters": {"binary_data": True}},
            ],
        }
    )
    r = httpx.post(
        f"{url}/v2/models/{name}/infer",
        content=header + b"".join(chunks),
        headers={HEADER: str(len(header))},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    length = int(r.headers[HEADER])
    doc, pos, got = orjson.loads(r.content[:length]), length, {}
    for out in doc["outputs"]:
        size = out["parameters"]["binary_data_size"]
        got[out["name"]] = from_raw(out["datatype"], out["shape"], r.content[pos : pos + size])
        pos += size
    return got


def grpc_infer(
    stub: pb_grpc.GRPCInferenceServiceStub, url: str, name: str, rows: pd.DataFrame, *, raw: bool
) -> dict[str, Array]:
    tensors, raws = [], []
    for n, dt, values in wire_columns(url, name, rows):
        tensor = pb.ModelInferRequest.InferInputTensor(name=n, datatype=dt, shape=[len(values)])
        if raw:
            raws.append(raw_bytes(dt, values))
        elif dt == "BYTES":
            tensor.contents.bytes_contents.extend(str(v).encode() for v in values)
        else:
            getattr(tensor.contents, WIRE[dt][1]).extend(values.tolist())
        tensors.append(tensor)
    reply = stub.ModelInfer(
        pb.ModelInferRequest(model_name=name, inputs=tensors, raw_input_contents=raws), timeout=30
    )
    got = {}
    for i, out in enumerate(reply.outputs):
        if reply.raw_output_contents:
            got[out.name] = from_raw(out.datatype, list(out.shape), reply.raw_output_contents[i])
        else:
            values = list(getattr(out.contents, WIRE[out.datatype][1]))
            if out.datatype == "BYTES":
                values = [v.decode() for v in values]
            got[out.name] = np.asarray(values, dtype=WIRE[out.datatype][0]).reshape(list(out.shape))
    return got


def plain_predict(
    url: str, name: str, rows: pd.DataFrame, proba: np.dtype[Any]
) -> dict[str, Array]:
    """Plain JSON numbers: probabilities read back in the model's dtype (float32 is written
    as the shortest float32)."""
    records = rows.astype(object).to_dict("records")
    r = httpx.post(
        f"{url}/predict",
        timeout=30,
        content=orjson.dumps(
            {"model": name, "inputs": records, "outputs": ["predict_proba"]},
            option=orjson.OPT_SERIALIZE_NUMPY,
        ),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    return {
        "predict": np.asarray(body["predictions"]),
        "predict_proba": np.asarray(body["predict_proba"], dtype=proba),
    }


def triton(url: str, name: str, rows: pd.DataFrame, *, binary: bool) -> dict[str, Array]:
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        inputs = []
        for n, dt, values in wire_columns(url, name, rows):
            tensor = triton_http.InferInput(n, [len(values)], dt)
            tensor.set_data_from_numpy(values, binary_data=binary)
            inputs.append(tensor)
        outputs = (
            None
            if not binary
            else [
                triton_http.InferRequestedOutput("predict", binary_data=True),
                triton_http.InferRequestedOutput("predict_proba", binary_data=True),
            ]
        )
        result = client.infer(name, inputs, outputs=outputs)
        got = {}
        for out in ("predict", "predict_proba"):
            value = result.as_numpy(out)
            assert value is not None, f"Triton's client got no {out}"
            if value.dtype == object:
                value = np.asarray(
                    [v.decode() if isinstance(v, bytes) else v for v in value], dtype=object
                )
            got[out] = value
        return got
    finally:
        client.close()


def assert_same(got: dict[str, Array], predict: Array, proba: Array, where: str) -> None:
    assert set(got) == {"predict", "predict_proba"}, where
    assert got["predict"].tolist() == predict.tolist(), where
    assert got["predict_proba"].shape == proba.shape, where
    np.testing.assert_array_equal(got["predict_proba"], proba, err_msg=where)


# -- the property ---------------------------------------------------------------------------
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases(), grpc_raw=st.booleans(), triton_binary=st.booleans())
def test_every_entry_point_answers_what_load_model_answers(
    registry: Client,
    server: Server,
    stub: pb_grpc.GRPCInferenceServiceStub,
    case: Case,
    grpc_raw: bool,
    triton_binary: bool,
) -> None:
    name, rows = register(registry, case)
    loaded = registry.load_model(name)
    predict, proba = loaded.predict(rows), loaded.predict_proba(rows)
    url = server.url
    assert_same(rest_json(url, name, rows), predict, proba, "REST JSON")
    assert_same(rest_binary(url, name, rows), predict, proba, "REST binary")
    assert_same(grpc_infer(stub, url, name, rows, raw=grpc_raw), predict, proba, "gRPC")
    assert_same(plain_predict(url, name, rows, proba.dtype), predict, proba, "/predict")
    assert_same(triton(url, name, rows, binary=triton_binary), predict, proba, "Triton client")


def test_string_labels_come_back_through_predict(registry: Client, server: Server) -> None:
    case = Case(
        kinds=["string", "int8"],
        words=["a", "b"],
        str_labels=True,
        classes=3,
        rows=3,
        seed=3,
        unseen=False,
    )
    name, rows = register(registry, case)
    loaded = registry.load_model(name)
    predict, proba = loaded.predict(rows), loaded.predict_proba(rows)
    assert_same(plain_predict(server.url, name, rows, proba.dtype), predict, proba, "/predict")


# -- the issue's own case, and what is refused ----------------------------------------------
def test_a_string_column_is_one_hot_encoded_as_trained_over_oip(
    registry: Client, server: Server, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    """The issue's case: a country column answered through ``load_model`` and not over OIP."""
    case = Case(
        kinds=["string", "float64"],
        words=["FR", "DE", "US"],
        str_labels=False,
        classes=2,
        rows=6,
        seed=7,
        unseen=False,
    )
    rng = np.random.default_rng(0)
    train = case.frame(200, rng)
    y = (train["c0_string"] == "FR").astype(int).to_numpy()
    model = case.pipeline(train).fit(train, y)
    registry.log_model(model, name="countries", input_example=train)
    rows = pd.DataFrame({"c0_string": ["FR", "DE", "FR", "US"], "c1_float64": [0.0] * 4})
    want = model.predict(rows)
    assert want.tolist() == [1, 0, 1, 0]
    assert_same(rest_json(server.url, "countries", rows), want, model.predict_proba(rows), "JSON")
    got = grpc_infer(stub, server.url, "countries", rows, raw=True)
    assert got["predict"].tolist() == [1, 0, 1, 0]


def test_invalid_utf8_is_422_naming_the_tensor_on_every_protocol(
    registry: Client, server: Server, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    if "countries" not in {m.name for m in registry.list_models().items}:
        test_a_string_column_is_one_hot_encoded_as_trained_over_oip(registry, server, stub)
    bad = b"\xffR"
    chunk = len(bad).to_bytes(4, "little") + bad
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "c0_string",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(chunk)},
                },
                {"name": "c1_float64", "datatype": "FP64", "shape": [1], "data": [0.0]},
            ]
        }
    )
    r = httpx.post(
        f"{server.url}/v2/models/countries/infer",
        content=header + chunk,
        headers={HEADER: str(len(header))},
        timeout=30,
    )
    assert r.status_code == 422, r.text
    assert "c0_string" in r.json()["error"]
    tensors = [
        pb.ModelInferRequest.InferInputTensor(
            name="c0_string",
            datatype="BYTES",
            shape=[1],
            contents=pb.InferTensorContents(bytes_contents=[bad]),
        ),
        pb.ModelInferRequest.InferInputTensor(
            name="c1_float64",
            datatype="FP64",
            shape=[1],
            contents=pb.InferTensorContents(fp64_contents=[0.0]),
        ),
    ]
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(pb.ModelInferRequest(model_name="countries", inputs=tensors), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "c0_string" in (info.value.details() or "")
