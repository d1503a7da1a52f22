"""The OIP v2 REST codec: JSON and binary tensors, every datatype, and every way to get it wrong.

The spec examples are KServe's ``required_api.md`` and Triton's ``extension_binary_data.md``.
With ``tritonclient[http]`` installed, requests built and responses parsed by Triton's own client
are checked too.
"""

from __future__ import annotations

import importlib.util
import json
import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelplane.core.signature import DTYPES
from modelplane.errors import InvalidInput, MalformedRequest, ModelplaneError
from modelplane.serving import oip
from modelplane.serving.types import InferResult, ModelInfo, TensorMeta

Array = np.ndarray[Any, Any]

SAMPLES: dict[str, Array] = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "UINT8": np.array([[0, 255, 7], [1, 2, 3]], dtype=np.uint8),
    "UINT16": np.array([[0, 65535, 7], [1, 2, 3]], dtype=np.uint16),
    "UINT32": np.array([[0, 2**32 - 1, 7], [1, 2, 3]], dtype=np.uint32),
    "UINT64": np.array([[0, 2**64 - 1, 7], [1, 2, 3]], dtype=np.uint64),
    "INT8": np.array([[-128, 127, 0], [1, -2, 3]], dtype=np.int8),
    "INT16": np.array([[-32768, 32767, 0], [1, -2, 3]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1, 0], [1, -2, 3]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1, 0], [1, -2, 3]], dtype=np.int64),
    "FP16": np.array([[0.5, -1.25, 65504.0], [0.0, 1e-3, -2.0]], dtype=np.float16),
    "FP32": np.array([[0.1, -1e30, 3.4e38], [0.0, 1e-7, -2.5]], dtype=np.float32),
    "FP64": np.array([[0.1, -1e300, 1.7e308], [0.0, 5e-324, -2.5]], dtype=np.float64),
    "BYTES": np.array([[b"a", b"", "é".encode()], [b"xyz", b"0", b" "]], dtype=object),
}


def body(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def tensor(name: str, datatype: str, shape: list[int], data: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def decode(raw: bytes, header_length: int | None = None) -> oip.OipInferRequest:
    return oip.decode_infer_request(raw, header_length=header_length, model="m", version=None)


def json_data(datatype: str, array: Array) -> list[Any]:
    flat = array.ravel().tolist()
    return [x.decode() for x in flat] if datatype == "BYTES" else flat


def binary_request(specs: list[tuple[str, str, Array]], **extra: Any) -> tuple[bytes, int]:
    """A binary-extension body: JSON header, then each tensor's raw bytes."""
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "datatype": dt,
                    "shape": list(a.shape),
                    "parameters": {"binary_data_size": len(oip.encode_raw_tensor(a))},
                }
                for name, dt, a in specs
            ],
            **extra,
        }
    )
    return header + b"".join(oip.encode_raw_tensor(a) for _, _, a in specs), len(header)


def split_binary_response(payload: bytes, headers: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    size = int(headers[oip.HEADER_LENGTH])
    return orjson.loads(payload[:size]), payload[size:]


def result(**outputs: Array) -> InferResult:
    return InferResult(model="m", version=3, outputs=dict(outputs), id="42")


class TestDatatypes:
    @pytest.mark.parametrize("datatype", list(SAMPLES))
    def test_each_datatype_has_its_numpy_dtype(self, datatype: str) -> None:
        assert oip.oip_datatype(oip.DATATYPES[datatype]) == datatype

    @pytest.mark.parametrize(
        ("dtype", "datatype"),
        [("<U3", "BYTES"), ("S2", "BYTES"), (">f8", "FP64"), ("<i2", "INT16")],
    )
    def test_strings_and_byte_orders_have_a_datatype(self, dtype: str, datatype: str) -> None:
        assert oip.oip_datatype(np.dtype(dtype)) == datatype

    def test_a_dtype_without_a_datatype_is_a_server_error(self) -> None:
        with pytest.raises(ModelplaneError) as caught:
            oip.oip_datatype(np.dtype(np.complex128))
        assert type(caught.value) is ModelplaneError

    @pytest.mark.parametrize("name", sorted(DTYPES))
    def test_every_signature_dtype_has_an_oip_datatype(self, name: str) -> None:
        expected = "BYTES" if name == "string" else oip.oip_datatype(np.dtype(name))
        assert oip.signature_dtype_to_oip(name) == expected

    def test_signature_dtypes_map_to_the_protocols_names(self) -> None:
        got = [oip.signature_dtype_to_oip(n) for n in ("float64", "int64", "bool", "string")]
        assert got == ["FP64", "INT64", "BOOL", "BYTES"]

    def test_an_unknown_signature_dtype_is_invalid(self) -> None:
        with pytest.raises(InvalidInput):
            oip.signature_dtype_to_oip("complex64")


class TestJsonRequests:
    def test_the_spec_example_request_decodes(self) -> None:
        raw = orjson.dumps(
            {
                "id": "42",
                "inputs": [
                    tensor("input0", "UINT32", [2, 2], [1, 2, 3, 4]),
                    tensor("input1", "BOOL", [3], [True, False, True]),
                ],
                "outputs": [{"name": "output0"}],
            }
        )
        req = oip.decode_infer_request(
            raw, header_length=None, model="fraud@challenger", version="2"
        )
        assert (req.model, req.version, req.id, req.outputs) == (
            "fraud@challenger",
            "2",
            "42",
            ("output0",),
        )
        assert req.inputs["input0"].dtype == np.uint32
        np.testing.assert_array_equal(req.inputs["input0"], [[1, 2], [3, 4]])
        np.testing.assert_array_equal(req.inputs["input1"], [True, False, True])
        assert req.binary_outputs == frozenset()

    @pytest.mark.parametrize("datatype", list(SAMPLES))
    def test_every_datatype_round_trips_through_json(self, datatype: str) -> None:
        array = SAMPLES[datatype]
        payload, headers = oip.encode_infer_response(result(out=array), model_name="m")
        assert headers == {}
        out = orjson.loads(payload)["outputs"][0]
        assert (out["datatype"], out["shape"]) == (datatype, [2, 3])
        got = decode(body(tensor("x", out["datatype"], out["shape"], out["data"]))).inputs["x"]
        assert got.dtype == oip.DATATYPES[datatype]
        assert got.shape == (2, 3)
        np.testing.assert_array_equal(got, array)

    @pytest.mark.parametrize("datatype", list(SAMPLES))
    def test_nested_data_is_read_row_major(self, datatype: str) -> None:
        array = SAMPLES[datatype]
        data = json_data(datatype, array)
        nested = [data[:3], data[3:]]
        got = decode(body(tensor("x", datatype, [2, 3], nested))).inputs["x"]
        np.testing.assert_array_equal(got, array)

    def test_nested_data_of_another_layout_but_the_same_count_is_accepted(self) -> None:
        got = decode(body(tensor("x", "INT64", [3, 2], [[1, 2, 3], [4, 5, 6]]))).inputs["x"]
        np.testing.assert_array_equal(got, [[1, 2], [3, 4], [5, 6]])

    def test_a_scalar_tensor_has_shape_empty(self) -> None:
        got = decode(body(tensor("x", "FP64", [], [2.5]))).inputs["x"]
        assert got.shape == ()
        assert got == 2.5

    def test_an_empty_tensor_is_fine(self) -> None:
        got = decode(body(tensor("x", "FP32", [0, 4], []))).inputs["x"]
        assert (got.shape, got.dtype) == ((0, 4), np.float32)

    def test_bytes_strings_arrive_as_utf8_bytes(self) -> None:
        got = decode(body(tensor("x", "BYTES", [2], ["héllo", ""]))).inputs["x"]
        assert got.dtype == object
        assert list(got) == ["héllo".encode(), b""]

    def test_fp16_numbers_arrive_as_float16(self) -> None:
        got = decode(body(tensor("x", "FP16", [2], [0.5, 1000]))).inputs["x"]
        assert got.dtype == np.float16
        assert got.tolist() == [0.5, 1000.0]

    def test_null_in_a_float_tensor_is_nan(self) -> None:
        got = decode(body(tensor("x", "FP64", [2], [1.0, None]))).inputs["x"]
        assert np.isnan(got[1])

    def test_integral_floats_are_accepted_for_integers(self) -> None:
        got = decode(body(tensor("x", "INT32", [2], [1.0, -3.0]))).inputs["x"]
        assert got.dtype == np.int32
        assert got.tolist() == [1, -3]

    def test_zero_and_one_are_accepted_for_bool(self) -> None:
        got = decode(body(tensor("x", "BOOL", [2], [0, 1]))).inputs["x"]
        assert got.tolist() == [False, True]

    def test_parameters_and_requested_outputs_are_kept(self) -> None:
        raw = body(
            tensor("x", "FP64", [1], [1.0]),
            parameters={"unit_id": "u1", "k": 3},
            outputs=[{"name": "a"}, {"name": "b", "parameters": {"binary_data": True}}],
        )
        req = decode(raw)
        assert dict(req.parameters) == {"unit_id": "u1", "k": 3}
        assert req.outputs == ("a", "b")
        assert req.binary_outputs == frozenset({"b"})

    def test_binary_data_output_asks_for_every_output_unless_overridden(self) -> None:
        params = {"binary_data_output": True}
        assert (
            decode(body(tensor("x", "FP64", [1], [1.0]), parameters=params)).binary_outputs is True
        )
        req = decode(
            body(
                tensor("x", "FP64", [1], [1.0]),
                parameters=params,
                outputs=[{"name": "a"}, {"name": "b", "parameters": {"binary_data": False}}],
            )
        )
        assert req.binary_outputs == frozenset({"a"})
        assert oip.binary_outputs_requested(req) == frozenset({"a"})


def _bad(raw: bytes, header_length: int | None = None) -> ModelplaneError:
    with pytest.raises((MalformedRequest, InvalidInput)) as caught:
        decode(raw, header_length)
    return caught.value


class TestMalformedJson:
    @pytest.mark.parametrize(
        ("raw", "field"),
        [
            (b"{not json", "body"),
            (b"", "body"),
            (b"\xff\xfe", "body"),
            (b"[1, 2]", "body"),
            (b"{}", "inputs"),
            (b'{"inputs": {}}', "inputs"),
            (b'{"inputs": [], "id": 5}', "id"),
            (b'{"inputs": [], "parameters": []}', "parameters"),
            (b'{"inputs": [3]}', "inputs[0]"),
            (b'{"inputs": [{"datatype": "FP64", "shape": [1], "data": [1]}]}', "inputs[0].name"),
            (b'{"inputs": [{"name": "x", "shape": [1], "data": [1]}]}', "inputs[0].datatype"),
            (b'{"inputs": [{"name": "x", "datatype": "FP64", "data": [1]}]}', "inputs[0].shape"),
            (
                b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1.5], "data": [1]}]}',
                "inputs[0].shape",
            ),
            (
                b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [true], "data": [1]}]}',
                "inputs[0].shape",
            ),
            (b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1]}]}', "inputs[0].data"),
            (
                b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": 1}]}',
                "inputs[0].data",
            ),
            (b'{"inputs": [], "outputs": {}}', "outputs"),
            (b'{"inputs": [], "outputs": [{}]}', "outputs[0].name"),
            (
                b'{"inputs": [], "outputs": [{"name": "a", "parameters": {"binary_data": 1}}]}',
                "outputs[0].parameters.binary_data",
            ),
            (
                b'{"inputs": [], "parameters": {"binary_data_output": "yes"}}',
                "parameters.binary_data_output",
            ),
        ],
    )
    def test_a_malformed_body_is_400_naming_the_field(self, raw: bytes, field: str) -> None:
        err = _bad(raw)
        assert isinstance(err, MalformedRequest)
        assert err.status == 400
        assert err.field == field

    def test_a_value_count_that_does_not_match_the_shape_is_422(self) -> None:
        err = _bad(body(tensor("x", "FP64", [2, 2], [1.0, 2.0, 3.0])))
        assert isinstance(err, InvalidInput)
        assert err.field == "inputs[0].data"
        assert "'x'" in err.message
        assert "3 values" in err.message

    def test_a_nested_count_mismatch_is_422(self) -> None:
        err = _bad(body(tensor("x", "FP64", [2, 2], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])))
        assert isinstance(err, InvalidInput)
        assert err.field == "inputs[0].data"

    def test_ragged_nested_data_is_422(self) -> None:
        err = _bad(body(tensor("x", "FP64", [3], [[1.0, 2.0], [3.0]])))
        assert isinstance(err, InvalidInput)

    @pytest.mark.parametrize(
        ("datatype", "data"),
        [
            ("FP64", ["abc"]),
            ("FP64", [{"a": 1}]),
            ("FP32", [1e39]),
            ("FP16", [70000.0]),
            ("INT32", [1.5]),
            ("INT8", [300]),
            ("UINT8", [-1]),
            ("UINT64", [2**64 - 1 + 0.0]),
            ("INT64", [9223372036854775808]),
            ("INT64", [None]),
            ("INT64", ["seven"]),
            ("BOOL", [2]),
            ("BOOL", ["true"]),
            ("BYTES", [5]),
            ("BYTES", [None]),
        ],
    )
    def test_values_that_do_not_convert_are_422(self, datatype: str, data: list[Any]) -> None:
        err = _bad(body(tensor("x", datatype, [1], data)))
        assert isinstance(err, InvalidInput)
        assert err.field == "inputs[0].data"
        assert datatype in err.message

    def test_an_unknown_datatype_is_422(self) -> None:
        err = _bad(body(tensor("x", "BF16", [1], [1.0])))
        assert isinstance(err, InvalidInput)
        assert err.field == "inputs[0].datatype"

    def test_a_negative_dimension_is_422(self) -> None:
        err = _bad(body(tensor("x", "FP64", [-1, 2], [1.0, 2.0])))
        assert isinstance(err, InvalidInput)
        assert err.field == "inputs[0].shape"

    def test_an_input_given_twice_is_422(self) -> None:
        err = _bad(body(tensor("x", "FP64", [1], [1.0]), tensor("x", "FP64", [1], [2.0])))
        assert isinstance(err, InvalidInput)
        assert err.field == "inputs[1].name"


class TestBinaryRequests:
    def test_the_spec_example_request_decodes(self) -> None:
        header = orjson.dumps(
            {
                "model_name": "mymodel",
                "inputs": [
                    {
                        "name": "input0",
                        "shape": [2, 2],
                        "datatype": "UINT32",
                        "parameters": {"binary_data_size": 16},
                    },
                    {
                        "name": "input1",
                        "shape": [3],
                        "datatype": "BOOL",
                        "parameters": {"binary_data_size": 3},
                    },
                ],
                "outputs": [{"name": "output0", "parameters": {"binary_data": True}}],
            }
        )
        raw = header + np.arange(4, dtype="<u4").tobytes() + bytes([1, 0, 1])
        req = decode(raw, len(header))
        np.testing.assert_array_equal(req.inputs["input0"], [[0, 1], [2, 3]])
        np.testing.assert_array_equal(req.inputs["input1"], [True, False, True])
        assert req.binary_outputs == frozenset({"output0"})

    def test_every_datatype_round_trips_through_binary(self) -> None:
        raw, size = binary_request([(dt, dt, a) for dt, a in SAMPLES.items()])
        req = decode(raw, size)
        for dt, array in SAMPLES.items():
            assert req.inputs[dt].dtype == oip.DATATYPES[dt], dt
            np.testing.assert_array_equal(req.inputs[dt], array)

    def test_binary_and_json_inputs_mix(self) -> None:
        header = orjson.dumps(
            {
                "inputs": [
                    tensor("j", "INT64", [2], [5, 6]),
                    {
                        "name": "b",
                        "datatype": "FP64",
                        "shape": [1],
                        "parameters": {"binary_data_size": 8},
                    },
                ]
            }
        )
        req = decode(header + np.float64(2.5).tobytes(), len(header))
        assert req.inputs["j"].tolist() == [5, 6]
        assert req.inputs["b"].tolist() == [2.5]

    def test_aligned_numeric_tensors_are_read_without_a_copy(self) -> None:
        raw, size = binary_request([("x", "FP64", np.arange(4.0))])
        pad = -size % 8  # JSON may end in spaces: put the tensor on an 8-byte boundary
        raw, size = raw[:size] + b" " * pad + raw[size:], size + pad
        got = decode(raw, size).inputs["x"]
        assert np.shares_memory(got, np.frombuffer(raw, dtype=np.uint8))
        assert not got.flags.writeable

    def test_a_misaligned_tensor_is_copied_into_alignment(self) -> None:
        raw, size = binary_request(
            [("b", "UINT8", np.array([1], dtype=np.uint8)), ("x", "FP64", np.arange(3.0))]
        )
        got = decode(raw, size).inputs["x"]
        assert got.flags.aligned
        assert got.tolist() == [0.0, 1.0, 2.0]

    def test_a_header_alone_with_the_header_length_is_plain_json(self) -> None:
        raw = body(tensor("x", "FP64", [1], [1.0]))
        assert decode(raw, len(raw)).inputs["x"].tolist() == [1.0]

    @pytest.mark.parametrize(
        ("tail", "size", "header_extra"),
        [
            (b"\x00" * 9, 8, 0),  # a byte left over
            (b"\x00" * 7, 8, 0),  # a byte short
            (b"\x00" * 8, 8, 10**6),  # header length past the body
            (b"\x00" * 8, -1, 0),  # negative size
            (b"\x00" * 8, True, 0),  # not a count
        ],
    )
    def test_binary_sizes_that_do_not_add_up_are_400(
        self, tail: bytes, size: Any, header_extra: int
    ) -> None:
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP64",
                        "shape": [1],
                        "parameters": {"binary_data_size": size},
                    }
                ]
            }
        )
        err = _bad(header + tail, len(header) + header_extra)
        assert isinstance(err, MalformedRequest)

    def test_a_negative_header_length_is_400(self) -> None:
        assert isinstance(_bad(b"{}", -1), MalformedRequest)

    def test_binary_data_size_without_the_header_is_400(self) -> None:
        raw = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP64",
                        "shape": [1],
                        "parameters": {"binary_data_size": 8},
                    }
                ]
            }
        )
        err = _bad(raw + b"\x00" * 8)
        assert isinstance(err, MalformedRequest)

    def test_data_and_binary_data_size_together_are_400(self) -> None:
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP64",
                        "shape": [1],
                        "data": [1.0],
                        "parameters": {"binary_data_size": 8},
                    }
                ]
            }
        )
        err = _bad(header + b"\x00" * 8, len(header))
        assert isinstance(err, MalformedRequest)

    def test_a_size_that_does_not_fit_the_shape_is_422(self) -> None:
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP64",
                        "shape": [2],
                        "parameters": {"binary_data_size": 8},
                    }
                ]
            }
        )
        err = _bad(header + b"\x00" * 8, len(header))
        assert isinstance(err, InvalidInput)
        assert err.field == "inputs[0].parameters.binary_data_size"

    @pytest.mark.parametrize(
        "data",
        [
            b"\x05\x00\x00\x00abc",  # element runs past the data
            b"\x01\x00\x00\x00a\x01\x00",  # truncated length of the second element
            b"\x01\x00\x00\x00a\x00\x00\x00\x00zz",  # bytes left over
            b"\x00\x00",  # shorter than one length prefix
        ],
    )
    def test_malformed_binary_bytes_are_422(self, data: bytes) -> None:
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "s",
                        "datatype": "BYTES",
                        "shape": [2],
                        "parameters": {"binary_data_size": len(data)},
                    }
                ]
            }
        )
        err = _bad(header + data, len(header))
        assert isinstance(err, InvalidInput)

    def test_a_huge_shape_with_little_data_is_refused_without_allocating(self) -> None:
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "s",
                        "datatype": "BYTES",
                        "shape": [2**40],
                        "parameters": {"binary_data_size": 4},
                    }
                ]
            }
        )
        assert isinstance(_bad(header + b"\x00" * 4, len(header)), InvalidInput)

    def test_binary_bools_other_than_zero_and_one_are_true(self) -> None:
        raw, size = binary_request([("b", "BOOL", np.array([True, False]))])
        raw = raw[:-2] + bytes([7, 0])
        assert decode(raw, size).inputs["b"].tolist() == [True, False]


class TestResponses:
    def test_the_spec_example_response(self) -> None:
        out = np.array([[1.0, 1.1], [2.0, 2.1], [3.0, 3.1]], dtype=np.float32)
        payload, headers = oip.encode_infer_response(result(output0=out), model_name="mymodel")
        assert headers == {}
        assert orjson.loads(payload) == {
            "model_name": "mymodel",
            "model_version": "3",
            "id": "42",
            "outputs": [
                {
                    "name": "output0",
                    "datatype": "FP32",
                    "shape": [3, 2],
                    "data": [1.0, 1.1, 2.0, 2.1, 3.0, 3.1],
                }
            ],
        }

    def test_the_spec_example_binary_response(self) -> None:
        out = np.array([[1.0, 1.1], [2.0, 2.1], [3.0, 3.1]], dtype=np.float32)
        payload, headers = oip.encode_infer_response(
            result(output0=out), model_name="mymodel", binary_outputs={"output0"}
        )
        doc, tail = split_binary_response(payload, headers)
        assert doc["outputs"] == [
            {
                "name": "output0",
                "datatype": "FP32",
                "shape": [3, 2],
                "parameters": {"binary_data_size": 24},
            }
        ]
        assert tail == out.astype("<f4").tobytes()

    def test_only_the_asked_outputs_go_binary_in_order(self) -> None:
        a, b, c = np.arange(2.0), np.array([b"xy"], dtype=object), np.array([True])
        payload, headers = oip.encode_infer_response(
            result(a=a, b=b, c=c), model_name="m", binary_outputs={"c", "b"}
        )
        doc, tail = split_binary_response(payload, headers)
        assert doc["outputs"][0]["data"] == [0.0, 1.0]
        assert doc["outputs"][1]["parameters"] == {"binary_data_size": 6}
        assert doc["outputs"][2]["parameters"] == {"binary_data_size": 1}
        assert tail == b"\x02\x00\x00\x00xy" + b"\x01"

    @pytest.mark.parametrize("datatype", list(SAMPLES))
    def test_every_datatype_round_trips_through_a_binary_response(self, datatype: str) -> None:
        array = SAMPLES[datatype]
        payload, headers = oip.encode_infer_response(
            result(out=array), model_name="m", binary_outputs=True
        )
        doc, tail = split_binary_response(payload, headers)
        out = doc["outputs"][0]
        got = oip.decode_raw_tensor(tail, out["datatype"], out["shape"], name="out", field="f")
        np.testing.assert_array_equal(got, array)

    def test_fallback_and_result_parameters_go_in_parameters(self) -> None:
        res = InferResult(
            model="m", version=2, outputs={}, fallback=True, parameters={"n": np.int64(3)}
        )
        doc = orjson.loads(oip.encode_infer_response(res, model_name="fraud")[0])
        assert doc == {
            "model_name": "fraud",
            "model_version": "2",
            "parameters": {"n": 3, "fallback": True},
            "outputs": [],
        }

    def test_non_contiguous_and_big_endian_outputs_are_written_row_major(self) -> None:
        transposed = np.arange(6.0).reshape(2, 3).T
        big = np.array([1, 2], dtype=">i4")
        doc = orjson.loads(
            oip.encode_infer_response(result(t=transposed, b=big), model_name="m")[0]
        )
        assert doc["outputs"][0]["data"] == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        assert doc["outputs"][1] == {"name": "b", "datatype": "INT32", "shape": [2], "data": [1, 2]}

    def test_text_outputs_are_bytes_and_non_utf8_is_escaped(self) -> None:
        labels = np.array(["fraud", "ok"])
        blobs = np.array([b"\xff"], dtype=object)
        doc = orjson.loads(oip.encode_infer_response(result(l=labels, b=blobs), model_name="m")[0])
        assert doc["outputs"][0]["datatype"] == "BYTES"
        assert doc["outputs"][0]["data"] == ["fraud", "ok"]
        assert doc["outputs"][1]["data"] == ["\\xff"]

    def test_nan_goes_out_as_null(self) -> None:
        doc = orjson.loads(
            oip.encode_infer_response(result(x=np.array([np.nan])), model_name="m")[0]
        )
        assert doc["outputs"][0]["data"] == [None]

    def test_an_output_without_a_datatype_is_a_server_error(self) -> None:
        with pytest.raises(ModelplaneError) as caught:
            oip.encode_infer_response(result(x=np.array([1j])), model_name="m")
        assert caught.value.status == 500


class TestMetadataAndErrors:
    def test_error_body(self) -> None:
        assert orjson.loads(oip.encode_error("no such model")) == {"error": "no such model"}

    def test_error_body_survives_unencodable_text(self) -> None:
        assert orjson.loads(oip.encode_error("bad \ud800 char"))["error"].startswith("bad ")

    def test_model_metadata(self) -> None:
        info = ModelInfo(
            name="fraud",
            versions=("1", "2"),
            platform="modelplane_sklearn",
            inputs=(TensorMeta("input-0", "FP64", (-1, 20)),),
            outputs=(TensorMeta("predict", "INT64", (-1,)),),
        )
        assert orjson.loads(oip.model_metadata_json(info)) == {
            "name": "fraud",
            "versions": ["1", "2"],
            "platform": "modelplane_sklearn",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 20]}],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
        }

    def test_server_metadata(self) -> None:
        doc = orjson.loads(oip.server_metadata_json("modelplane", "0.1.0", ("binary_tensor_data",)))
        assert doc == {
            "name": "modelplane",
            "version": "0.1.0",
            "extensions": ["binary_tensor_data"],
        }


# -- fuzzing: whatever the body, only MalformedRequest or InvalidInput ------------------------
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
datatypes = st.sampled_from([*SAMPLES, "BF16", "fp64", ""]) | json_values
shapes = st.lists(st.integers(-2, 4), max_size=4) | json_values
tensors = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["x", "y"]) | json_values,
        "datatype": datatypes,
        "shape": shapes,
        "data": st.lists(json_scalars | st.lists(json_scalars, max_size=3), max_size=8)
        | json_values,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-1, 40) | json_values}
        )
        | json_values,
    },
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=3) | json_values,
        "inputs": st.lists(tensors, max_size=3) | json_values,
        "outputs": st.lists(
            st.fixed_dictionaries(
                {}, optional={"name": st.text(max_size=3), "parameters": json_values}
            ),
            max_size=2,
        )
        | json_values,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": json_values})
        | json_values,
    },
)


def _decodes_or_refuses(raw: bytes, header_length: int | None) -> None:
    try:
        req = decode(raw, header_length)
    except (MalformedRequest, InvalidInput):
        return
    for array in req.inputs.values():
        assert isinstance(array, np.ndarray)
        assert array.dtype in oip.DATATYPES.values()


class TestFuzz:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(raw=st.binary(max_size=200), header_length=st.none() | st.integers(-5, 250))
    def test_random_bytes_only_raise_request_errors(
        self, raw: bytes, header_length: int | None
    ) -> None:
        _decodes_or_refuses(raw, header_length)

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=requests, tail=st.binary(max_size=48), cut=st.none() | st.integers(-2, 2))
    def test_random_oip_shaped_documents_only_raise_request_errors(
        self, doc: dict[str, Any], tail: bytes, cut: int | None
    ) -> None:
        header = json.dumps(doc).encode()  # stdlib: big ints too, which orjson refuses
        _decodes_or_refuses(header + tail, None if cut is None else len(header) + cut)

    @settings(max_examples=200, deadline=None)
    @given(
        datatype=st.sampled_from(list(SAMPLES)),
        shape=st.lists(st.integers(0, 3), max_size=3),
        raw=st.binary(max_size=64),
    )
    def test_random_raw_tensors_only_raise_invalid_input(
        self, datatype: str, shape: list[int], raw: bytes
    ) -> None:
        try:
            got = oip.decode_raw_tensor(raw, datatype, shape, name="x", field="f")
        except InvalidInput:
            return
        assert got.shape == tuple(shape)
        assert got.size == math.prod(shape)


# -- Triton's own HTTP client ------------------------------------------------------------------
needs_tritonclient = pytest.mark.skipif(
    importlib.util.find_spec("tritonclient") is None
    or importlib.util.find_spec("geventhttpclient") is None,
    reason="tritonclient[http] is not installed",
)


@needs_tritonclient
class TestTritonHttpClient:
    @pytest.mark.parametrize("binary", [True, False])
    def test_its_request_bodies_decode(self, binary: bool) -> None:
        import tritonclient.http as httpclient

        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        words = np.array([b"ab", b"c"], dtype=object)
        inputs = [
            httpclient.InferInput("x", [2, 3], "FP32"),
            httpclient.InferInput("w", [2], "BYTES"),
        ]
        inputs[0].set_data_from_numpy(x, binary_data=binary)
        inputs[1].set_data_from_numpy(words, binary_data=binary)
        raw, header_length = httpclient.InferenceServerClient.generate_request_body(
            inputs, request_id="r-1"
        )
        req = decode(raw, header_length)
        assert req.id == "r-1"
        np.testing.assert_array_equal(req.inputs["x"], x)
        assert list(req.inputs["w"]) == [b"ab", b"c"]
        assert req.binary_outputs is True  # no outputs named: Triton asks for all binary

    @pytest.mark.parametrize("binary", [True, False])
    def test_it_parses_our_responses(self, binary: bool) -> None:
        import tritonclient.http as httpclient

        arrays = {k: SAMPLES[k] for k in ("FP32", "INT64", "BOOL", "BYTES", "FP16")}
        payload, headers = oip.encode_infer_response(
            InferResult(model="m", version=1, outputs=dict(arrays), id="r-2"),
            model_name="m",
            binary_outputs=binary,
        )
        length = headers.get(oip.HEADER_LENGTH)
        parsed = httpclient.InferenceServerClient.parse_response_body(
            payload, header_length=int(length) if length else None
        )
        assert parsed.get_response()["id"] == "r-2"
        for name, array in arrays.items():
            expected = array
            if name == "BYTES" and not binary:  # JSON strings: Triton's client keeps them as str
                expected = np.vectorize(bytes.decode, otypes=[object])(array)
            np.testing.assert_array_equal(parsed.as_numpy(name), expected)
