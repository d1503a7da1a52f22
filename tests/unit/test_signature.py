"""Signatures: inference from arrays and columns, JSON round trips, validation of input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelplane.core.signature import Signature, TensorSpec, infer_signature
from modelplane.errors import InvalidInput, SignatureMismatch


@pytest.fixture
def tensor_sig() -> Signature:
    return infer_signature(np.zeros((5, 3), dtype=np.float32))


@pytest.fixture
def columnar_sig() -> Signature:
    frame = pd.DataFrame(
        {
            "amount": np.array([1.5, 2.0]),
            "hour": np.array([1, 2], dtype=np.int64),
            "merchant": pd.Series(["a", "b"], dtype=object),
        }
    )
    return infer_signature(frame)


def mismatch(sig: Signature, batch: Any) -> SignatureMismatch:
    with pytest.raises(SignatureMismatch) as info:
        sig.validate(batch)
    return info.value


class TestInferSignature:
    def test_2d_array_gives_one_input_named_input_0_with_variable_rows(self) -> None:
        sig = infer_signature(np.zeros((10, 4)))
        assert sig.inputs == (TensorSpec("input-0", "float64", (-1, 4)),)
        assert not sig.is_columnar

    def test_dataframe_gives_one_1d_input_per_column(self, columnar_sig: Signature) -> None:
        assert columnar_sig.inputs == (
            TensorSpec("amount", "float64", (-1,)),
            TensorSpec("hour", "int64", (-1,)),
            TensorSpec("merchant", "string", (-1,)),
        )
        assert columnar_sig.is_columnar

    def test_dict_of_columns_gives_one_input_per_column(self) -> None:
        sig = infer_signature({"a": [1.0, 2.0], "b": np.array([True, False])})
        assert [(s.name, s.dtype, s.shape) for s in sig.inputs] == [
            ("a", "float64", (-1,)),
            ("b", "bool", (-1,)),
        ]

    def test_1d_y_gives_output_0(self) -> None:
        sig = infer_signature(np.zeros((3, 2)), np.array([0, 1, 1]))
        assert sig.outputs == (TensorSpec("output-0", "int64", (-1,)),)

    def test_2d_y_keeps_its_width(self) -> None:
        sig = infer_signature(np.zeros((3, 2)), np.zeros((3, 2), dtype=np.float32))
        assert sig.outputs == (TensorSpec("output-0", "float32", (-1, 2)),)

    def test_named_series_y_keeps_its_name(self) -> None:
        sig = infer_signature(np.zeros((2, 2)), pd.Series([0, 1], name="is_fraud"))
        assert sig.outputs[0].name == "is_fraud"

    def test_no_y_gives_no_outputs(self) -> None:
        assert infer_signature(np.zeros((2, 2))).outputs == ()

    def test_string_labels_have_dtype_string(self) -> None:
        sig = infer_signature(np.zeros((2, 2)), np.array(["no", "yes"]))
        assert sig.outputs[0].dtype == "string"

    def test_1d_array_x_is_refused_with_a_hint(self) -> None:
        with pytest.raises(InvalidInput, match="reshape"):
            infer_signature(np.zeros(3))


class TestSignatureDict:
    def test_tensor_signature_round_trips_through_json(self, tensor_sig: Signature) -> None:
        data = json.loads(json.dumps(tensor_sig.to_dict()))
        assert Signature.from_dict(data) == tensor_sig
        assert Signature.from_dict(data).to_dict() == data

    def test_columnar_signature_round_trips_through_json(self, columnar_sig: Signature) -> None:
        data = json.loads(json.dumps(columnar_sig.to_dict()))
        assert Signature.from_dict(data) == columnar_sig

    def test_unknown_dtype_is_refused(self) -> None:
        with pytest.raises(InvalidInput, match="unknown dtype"):
            TensorSpec.from_dict({"name": "x", "dtype": "complex64", "shape": [-1]})

    def test_malformed_spec_is_refused(self) -> None:
        with pytest.raises(InvalidInput):
            Signature.from_dict({"inputs": [{"name": "x"}]})


class TestValidateTensor:
    def test_matching_array_is_returned_without_copy(self, tensor_sig: Signature) -> None:
        batch = np.ones((4, 3), dtype=np.float32)
        assert tensor_sig.validate(batch) is batch

    def test_nested_lists_become_an_array_of_the_declared_dtype(
        self, tensor_sig: Signature
    ) -> None:
        out = tensor_sig.validate([[1, 2, 3], [4, 5, 6]])
        assert out.dtype == np.float32
        assert out.shape == (2, 3)

    def test_one_row_without_batch_axis_is_taken_as_one_row(self, tensor_sig: Signature) -> None:
        assert tensor_sig.validate([1.0, 2.0, 3.0]).shape == (1, 3)

    def test_dataframe_with_the_right_width_is_accepted(self, tensor_sig: Signature) -> None:
        out = tensor_sig.validate(pd.DataFrame(np.ones((2, 3))))
        assert out.shape == (2, 3)
        assert out.dtype == np.float32

    def test_dict_keyed_by_input_name_is_accepted(self, tensor_sig: Signature) -> None:
        assert tensor_sig.validate({"input-0": np.ones((2, 3))}).shape == (2, 3)

    def test_int_to_int_narrowing_within_range_is_accepted(self) -> None:
        sig = infer_signature(np.zeros((1, 2), dtype=np.int32))
        assert sig.validate(np.array([[1, 2]], dtype=np.int64)).dtype == np.int32

    def test_integral_floats_are_accepted_for_an_int_tensor(self) -> None:
        sig = infer_signature(np.zeros((1, 2), dtype=np.int64))
        assert sig.validate([[1.0, 2.0]]).tolist() == [[1, 2]]

    def test_none_becomes_nan_for_a_float_tensor(self, tensor_sig: Signature) -> None:
        out = tensor_sig.validate([[1.0, None, 3.0]])
        assert np.isnan(out[0, 1])

    def test_wrong_number_of_features_names_the_tensor(self, tensor_sig: Signature) -> None:
        err = mismatch(tensor_sig, np.ones((2, 4)))
        assert err.field == "input-0"
        assert "expected 3 features" in err.message
        assert "got 4" in err.message

    def test_wrong_rank_names_the_tensor(self, tensor_sig: Signature) -> None:
        err = mismatch(tensor_sig, np.ones((2, 3, 1)))
        assert err.field == "input-0"
        assert "2-D" in err.message

    def test_strings_for_a_float_tensor_name_the_tensor(self, tensor_sig: Signature) -> None:
        err = mismatch(tensor_sig, [["a", "b", "c"]])
        assert err.field == "input-0"
        assert "strings" in err.message

    def test_fractional_floats_for_an_int_tensor_are_refused(self) -> None:
        sig = infer_signature(np.zeros((1, 2), dtype=np.int64))
        err = mismatch(sig, np.array([[1.5, 2.0]]))
        assert err.field == "input-0"
        assert "fractional" in err.message

    def test_out_of_range_ints_are_refused(self) -> None:
        sig = infer_signature(np.zeros((1, 1), dtype=np.int8))
        assert mismatch(sig, np.array([[1000]])).field == "input-0"

    def test_ragged_rows_are_refused(self, tensor_sig: Signature) -> None:
        assert mismatch(tensor_sig, [[1.0, 2.0, 3.0], [1.0]]).field == "input-0"

    def test_dataframe_of_the_wrong_width_names_the_tensor(self, tensor_sig: Signature) -> None:
        err = mismatch(tensor_sig, pd.DataFrame(np.ones((2, 2))))
        assert err.field == "input-0"
        assert "3 columns" in err.message

    def test_dict_without_the_input_name_names_it(self, tensor_sig: Signature) -> None:
        assert mismatch(tensor_sig, {"x": np.ones((1, 3))}).field == "input-0"

    def test_mismatch_is_an_invalid_input(self, tensor_sig: Signature) -> None:
        with pytest.raises(InvalidInput):
            tensor_sig.validate(np.ones((1, 7)))


class TestValidateColumns:
    def test_matching_dataframe_is_returned_as_is(self, columnar_sig: Signature) -> None:
        frame = pd.DataFrame(
            {"amount": [1.0], "hour": np.array([3]), "merchant": pd.Series(["x"], dtype=object)}
        )
        assert columnar_sig.validate(frame) is frame

    def test_columns_are_put_in_signature_order(self, columnar_sig: Signature) -> None:
        frame = pd.DataFrame({"merchant": ["x"], "hour": [3], "amount": [1.0]})
        assert list(columnar_sig.validate(frame).columns) == ["amount", "hour", "merchant"]

    def test_dict_of_columns_becomes_a_dataframe(self, columnar_sig: Signature) -> None:
        out = columnar_sig.validate({"amount": [1, 2], "hour": [1, 2], "merchant": ["a", "b"]})
        assert isinstance(out, pd.DataFrame)
        assert out["amount"].dtype == np.float64

    def test_list_of_records_becomes_a_dataframe(self, columnar_sig: Signature) -> None:
        out = columnar_sig.validate([{"amount": 1.0, "hour": 2, "merchant": "a"}] * 3)
        assert out.shape == (3, 3)

    def test_single_record_dict_becomes_one_row(self, columnar_sig: Signature) -> None:
        assert len(columnar_sig.validate({"amount": 1.0, "hour": 2, "merchant": "a"})) == 1

    def test_missing_column_is_named(self, columnar_sig: Signature) -> None:
        err = mismatch(columnar_sig, {"amount": [1.0], "merchant": ["a"]})
        assert err.field == "hour"
        assert "missing column 'hour'" in err.message

    def test_extra_column_is_named(self, columnar_sig: Signature) -> None:
        err = mismatch(columnar_sig, {"amount": [1.0], "hour": [1], "merchant": ["a"], "x": [0]})
        assert err.field == "x"
        assert "unexpected column" in err.message

    def test_strings_in_a_number_column_name_the_column(self, columnar_sig: Signature) -> None:
        err = mismatch(columnar_sig, {"amount": ["lots"], "hour": [1], "merchant": ["a"]})
        assert err.field == "amount"
        assert "expected float64" in err.message

    def test_numbers_in_a_string_column_name_the_column(self, columnar_sig: Signature) -> None:
        err = mismatch(columnar_sig, {"amount": [1.0], "hour": [1], "merchant": [3]})
        assert err.field == "merchant"
        assert "expected strings" in err.message

    def test_fractional_value_in_an_int_column_names_the_column(
        self, columnar_sig: Signature
    ) -> None:
        err = mismatch(columnar_sig, {"amount": [1.0], "hour": [1.5], "merchant": ["a"]})
        assert err.field == "hour"

    def test_a_plain_array_is_refused_for_named_columns(self, columnar_sig: Signature) -> None:
        err = mismatch(columnar_sig, np.ones((2, 3)))
        assert err.field == "amount"
        assert "named columns" in err.message

    def test_columns_of_different_lengths_are_refused(self, columnar_sig: Signature) -> None:
        err = mismatch(columnar_sig, {"amount": [1.0, 2.0], "hour": [1], "merchant": ["a"]})
        assert err.field is not None


class TestValidateSeveralTensors:
    def test_dict_of_named_tensors_is_validated_per_tensor(self) -> None:
        sig = Signature(
            inputs=(
                TensorSpec("image", "float32", (-1, 2, 2)),
                TensorSpec("meta", "int64", (-1, 1)),
            )
        )
        out = sig.validate({"image": np.zeros((3, 2, 2)), "meta": [[1], [2], [3]]})
        assert out["image"].dtype == np.float32
        assert out["meta"].shape == (3, 1)

    def test_missing_tensor_is_named(self) -> None:
        sig = Signature(
            inputs=(TensorSpec("a", "float32", (-1, 1)), TensorSpec("b", "float32", (-1, 1)))
        )
        assert mismatch(sig, {"a": [[1.0]]}).field == "b"
