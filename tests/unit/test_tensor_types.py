"""Every tensor type reaches the model as it was trained: strings as ``str`` (OIP sends BYTES),
categoricals with their training categories, numbers in their own dtype, untouched."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelplane.core.signature import (
    Signature,
    TensorSpec,
    infer_signature,
    validate_columns,
)
from modelplane.errors import InvalidInput, SignatureMismatch

NUMERIC = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
]


def objects(*items: Any) -> np.ndarray[Any, Any]:
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array


@pytest.fixture
def mixed() -> Signature:
    return infer_signature(
        pd.DataFrame(
            {
                "country": pd.Series(["FR", "DE"], dtype=object),
                "amount": [1.5, 2.0],
            }
        )
    )


class TestStringColumns:
    def test_bytes_reach_the_model_as_str_on_the_serving_path(self, mixed: Signature) -> None:
        out = validate_columns(
            mixed, {"country": objects(b"FR", "Z\xfcrich".encode()), "amount": np.array([1.0, 2.0])}
        )
        assert out["country"].tolist() == ["FR", "Zürich"]
        assert all(type(v) is str for v in out["country"])

    def test_bytes_reach_the_model_as_str_through_validate(self, mixed: Signature) -> None:
        frame = mixed.validate({"country": objects(b"FR", b"DE"), "amount": [1.0, 2.0]})
        assert frame["country"].tolist() == ["FR", "DE"]

    def test_a_dataframe_of_bytes_is_decoded_too(self, mixed: Signature) -> None:
        frame = pd.DataFrame({"country": objects(b"FR", b"DE"), "amount": [1.0, 2.0]})
        assert mixed.validate(frame)["country"].tolist() == ["FR", "DE"]

    def test_a_string_tensor_is_decoded_whatever_its_shape(self) -> None:
        sig = Signature(inputs=(TensorSpec("text", "string", (-1, 2)),))
        out = sig.validate({"text": objects(b"a", b"b", "c", b"d").reshape(2, 2)})
        assert out.tolist() == [["a", "b"], ["c", "d"]]

    def test_fixed_width_bytes_are_decoded(self, mixed: Signature) -> None:
        out = validate_columns(
            mixed, {"country": np.array([b"FR", b"DE"]), "amount": np.array([1.0, 2.0])}
        )
        assert out["country"].tolist() == ["FR", "DE"]

    @pytest.mark.parametrize("bad", [b"\xff", b"ok\xc3", b"\xed\xa0\x80"])
    def test_invalid_utf8_is_422_naming_the_column(self, mixed: Signature, bad: bytes) -> None:
        with pytest.raises(SignatureMismatch) as info:
            validate_columns(
                mixed, {"country": objects(b"FR", bad), "amount": np.array([1.0, 2.0])}
            )
        assert info.value.status == 422
        assert info.value.field == "country"
        assert "country" in str(info.value)
        assert "element 1" in str(info.value)

    def test_str_columns_are_passed_on_as_they_are(self, mixed: Signature) -> None:
        text = objects("FR", "DE")
        unicode = np.array(["FR", "DE"])
        assert validate_columns(mixed, {"country": text, "amount": np.ones(2)})["country"] is text
        out = validate_columns(mixed, {"country": unicode, "amount": np.ones(2)})
        assert out["country"] is unicode

    def test_bytes_for_a_numeric_column_are_still_refused(self, mixed: Signature) -> None:
        with pytest.raises(SignatureMismatch) as info:
            validate_columns(mixed, {"country": objects("FR"), "amount": objects(b"1.5")})
        assert info.value.field == "amount"


class TestNumericColumns:
    @pytest.mark.parametrize("dtype", NUMERIC)
    def test_a_column_of_its_own_dtype_is_not_copied(self, dtype: str) -> None:
        sig = Signature(inputs=(TensorSpec("x", dtype, (-1,)), TensorSpec("s", "string", (-1,))))
        column = np.zeros(3, dtype=dtype)
        out = validate_columns(sig, {"x": column, "s": objects("a", "b", "c")})
        assert out["x"] is column

    @pytest.mark.parametrize("dtype", NUMERIC)
    def test_a_dataframe_column_keeps_its_dtype_through_validate(self, dtype: str) -> None:
        frame = pd.DataFrame({"x": np.ones(2, dtype=dtype)})
        sig = infer_signature(frame)
        assert sig.inputs[0].dtype == dtype
        assert sig.validate(frame) is frame

    @pytest.mark.parametrize("dtype", [d for d in NUMERIC if d != "bool"])
    def test_the_whole_range_of_a_dtype_converts_exactly_from_a_wider_one(self, dtype: str) -> None:
        kind = np.dtype(dtype).kind
        info: Any = np.iinfo(dtype) if kind in "iu" else np.finfo(dtype)
        values = np.array([info.min, 0, info.max], dtype=dtype)
        wide = values.astype({"i": "int64", "u": "uint64", "f": "float64"}[kind])
        sig = Signature(inputs=(TensorSpec("x", dtype, (-1,)),))
        out = validate_columns(sig, {"x": wide})
        assert out["x"].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out["x"], values)

    @pytest.mark.parametrize(
        ("dtype", "value"),
        [
            ("int64", 2.0**63),
            ("uint64", 2.0**64),
            ("int64", -(2.0**64)),
            ("int8", 128.0),
            ("uint8", -1.0),
            ("uint64", -1.0),
        ],
    )
    def test_a_float_just_past_an_integer_range_is_refused_not_wrapped(
        self, dtype: str, value: float
    ) -> None:
        sig = Signature(inputs=(TensorSpec("x", dtype, (-1,)),))
        with pytest.raises(SignatureMismatch) as info:
            validate_columns(sig, {"x": np.array([0.0, value])})
        assert info.value.field == "x"

    def test_the_largest_floats_that_fit_64_bit_integers_are_taken(self) -> None:
        sig = Signature(inputs=(TensorSpec("x", "int64", (-1,)),))
        out = validate_columns(sig, {"x": np.array([-(2.0**63), 2.0**63 - 1024])})
        assert out["x"].tolist() == [-(2**63), 2**63 - 1024]


class TestCategoricalSignatures:
    def test_a_category_column_is_recorded_with_its_categories_in_order(self) -> None:
        frame = pd.DataFrame({"city": pd.Categorical(["b", "a"], categories=["b", "a", "c"])})
        spec = infer_signature(frame).inputs[0]
        assert (spec.dtype, spec.categories, spec.ordered) == ("string", ("b", "a", "c"), False)
        assert spec.to_dict() == {
            "name": "city",
            "dtype": "string",
            "shape": [-1],
            "categories": ["b", "a", "c"],
        }

    def test_ordered_integer_categories_round_trip(self) -> None:
        dtype = pd.CategoricalDtype([3, 1, 2], ordered=True)
        sig = infer_signature({"grade": pd.Series([1, 2], dtype=dtype)})
        spec = sig.inputs[0]
        assert (spec.dtype, spec.categories, spec.ordered) == ("int64", (3, 1, 2), True)
        assert Signature.from_dict(sig.to_dict()) == sig

    def test_a_signature_stored_before_categories_reads_as_before(self) -> None:
        old = {"inputs": [{"name": "city", "dtype": "string", "shape": [-1]}], "outputs": []}
        sig = Signature.from_dict(old)
        assert sig.inputs[0].categories is None
        assert sig.to_dict() == old
        assert sig.categorical_inputs == ()

    @pytest.mark.parametrize(
        ("spec", "match"),
        [
            ({"dtype": "string", "categories": ["a", 1]}, "not a string value"),
            ({"dtype": "int64", "categories": [1, True]}, "not a int64 value"),
            ({"dtype": "int64", "categories": [1, 1]}, "unique"),
            ({"dtype": "string", "categories": "ab"}, "must be a list"),
            ({"dtype": "string", "categories": ["a"], "ordered": "yes"}, "true or false"),
            ({"dtype": "string", "categories": ["a"], "shape": [-1, 2]}, "1-D"),
        ],
    )
    def test_bad_categories_are_refused_naming_the_column(
        self, spec: dict[str, Any], match: str
    ) -> None:
        with pytest.raises(InvalidInput, match=match) as info:
            TensorSpec.from_dict({"name": "city", "shape": [-1], **spec})
        assert info.value.field == "city"


@pytest.fixture
def cities() -> Signature:
    return Signature(
        inputs=(
            TensorSpec("city", "string", (-1,), categories=("Paris", "Lyon", "Nice")),
            TensorSpec("amount", "float64", (-1,)),
        )
    )


class TestCategoricalValues:
    def test_strings_become_the_training_categories_codes(self, cities: Signature) -> None:
        frame = cities.validate({"city": ["Nice", "Paris"], "amount": [1.0, 2.0]})
        assert list(frame["city"].cat.categories) == ["Paris", "Lyon", "Nice"]
        assert frame["city"].cat.codes.tolist() == [2, 0]

    def test_another_category_order_is_recoded_by_value(self, cities: Signature) -> None:
        city = pd.Categorical(["Nice", "Lyon"], categories=["Nice", "Lyon"])
        frame = cities.validate(pd.DataFrame({"city": city, "amount": [1.0, 2.0]}))
        assert frame["city"].cat.codes.tolist() == [2, 1]
        assert frame["city"].tolist() == ["Nice", "Lyon"]

    def test_a_column_already_right_is_not_copied(self, cities: Signature) -> None:
        city = pd.Categorical(["Nice"], categories=["Paris", "Lyon", "Nice"])
        frame = pd.DataFrame({"city": city, "amount": [1.0]})
        assert cities.validate(frame) is frame

    def test_an_unseen_value_is_missing_as_pandas_makes_it(self, cities: Signature) -> None:
        frame = cities.validate({"city": ["Brest", "Nice", None], "amount": [1.0, 2.0, 3.0]})
        assert frame["city"].cat.codes.tolist() == [-1, 2, -1]

    def test_bytes_on_the_serving_path_become_categories(self, cities: Signature) -> None:
        columns = validate_columns(
            cities, {"city": objects(b"Lyon", b"Brest"), "amount": np.ones(2)}
        )
        frame = cities.frame(columns)
        assert frame["city"].cat.codes.tolist() == [1, -1]
        assert frame["amount"].dtype == np.float64

    def test_integer_categories_take_integers_only(self) -> None:
        sig = Signature(inputs=(TensorSpec("grade", "int64", (-1,), categories=(3, 1, 2)),))
        frame = sig.frame(validate_columns(sig, {"grade": np.array([1.0, 3.0])}))
        assert frame["grade"].cat.codes.tolist() == [1, 0]
        with pytest.raises(SignatureMismatch) as info:
            validate_columns(sig, {"grade": objects(b"1")})
        assert info.value.field == "grade"

    @settings(max_examples=40, deadline=None)
    @given(
        categories=st.lists(st.text(max_size=4), min_size=1, max_size=5, unique=True),
        picks=st.lists(st.integers(0, 6), min_size=1, max_size=8),
    )
    def test_the_serving_path_builds_what_validate_builds(
        self, categories: list[str], picks: list[int]
    ) -> None:
        """Columns checked one request at a time, framed once per batch (the serving path),
        equal what ``load_model`` gets from one DataFrame: same categories, same codes."""
        sig = Signature(inputs=(TensorSpec("c", "string", (-1,), categories=tuple(categories)),))
        pool = [*categories, "\u2603unseen"]
        values = [pool[i % len(pool)] for i in picks]
        served = sig.frame(validate_columns(sig, {"c": objects(*(v.encode() for v in values))}))
        loaded = sig.validate(pd.DataFrame({"c": objects(*values)}))
        pd.testing.assert_series_equal(served["c"], loaded["c"])
