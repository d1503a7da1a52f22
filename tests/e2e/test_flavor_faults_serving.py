"""Flavor faults through the serving app (in process, real lifespan): XGBoost probabilities of
several rows (a transposed array) on every encoder, cache included, and categorical models of
LightGBM and scikit-learn answered as fitted over OIP and /predict."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from modelplane.bootstrap import Platform
from modelplane.client import Client
from modelplane.serving import oip
from tests.e2e.test_serving_app import options, serve
from tests.unit.test_flavor_faults import CITIES, categorical_models, city_frame

pytestmark = pytest.mark.anyio

RNG = np.random.default_rng(5)
X = RNG.normal(size=(120, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)


def from_json(out: dict[str, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(out["data"], dtype=oip.DATATYPES[out["datatype"]]).reshape(out["shape"])


@pytest.fixture
def xgb_model(client: Client) -> Any:
    xgb = pytest.importorskip("xgboost")
    model = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, Y)
    client.log_model(model, name="boost", input_example=X)
    return model


class TestXGBoostProbabilities:
    @pytest.mark.parametrize("cache", [False, True])
    async def test_several_rows_through_predict_and_oip(
        self, platform: Platform, xgb_model: Any, cache: bool
    ) -> None:
        rows = X[:5]
        want = xgb_model.predict_proba(rows)
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "datatype": "FP64",
                    "shape": [5, 4],
                    "data": rows.ravel().tolist(),
                }
            ]
        }
        async with serve(platform, options(cache=cache)) as http:
            for _ in range(2):  # the second time from the cache when it is on
                plain = await http.post(
                    "/predict",
                    json={"model": "boost", "inputs": rows.tolist(), "outputs": ["predict_proba"]},
                )
                assert plain.status_code == 200, plain.text
                got = np.asarray(plain.json()["predict_proba"], dtype=want.dtype)
                np.testing.assert_array_equal(got, want)
                r = await http.post("/v2/models/boost/infer", json=body)
                assert r.status_code == 200, r.text
                outputs = {o["name"]: from_json(o) for o in r.json()["outputs"]}
                np.testing.assert_array_equal(outputs["predict_proba"], want)
                binary = await http.post(
                    "/v2/models/boost/infer",
                    json={**body, "parameters": {"binary_data_output": True}},
                )
                assert binary.status_code == 200, binary.text
                length = int(binary.headers[oip.HEADER_LENGTH])
                doc = orjson.loads(binary.content[:length])
                sizes = [o["parameters"]["binary_data_size"] for o in doc["outputs"]]
                start = length + sizes[0]  # predict first, then predict_proba
                proba = doc["outputs"][1]
                raw = binary.content[start : start + sizes[1]]
                back = oip.decode_raw_tensor(
                    raw,
                    proba["datatype"],
                    proba["shape"],
                    name="predict_proba",
                    field="predict_proba",
                )
                np.testing.assert_array_equal(back, want)


@pytest.mark.parametrize("model", categorical_models(), ids=lambda m: type(m).__name__)
class TestCategoricalModelsServed:
    async def test_oip_and_predict_answer_as_the_fitted_model(
        self, platform: Platform, client: Client, model: Any
    ) -> None:
        frame, y = city_frame(300)
        client.log_model(model.fit(frame, y), name="cities", input_example=frame)
        rows, _ = city_frame(9, seed=2)
        want = model.predict_proba(rows)
        city = [str(c) for c in rows["city"]]
        body = {
            "inputs": [
                {"name": "city", "datatype": "BYTES", "shape": [9], "data": city},
                {
                    "name": "amount",
                    "datatype": "FP64",
                    "shape": [9],
                    "data": rows["amount"].tolist(),
                },
            ]
        }
        async with serve(platform) as http:
            meta = (await http.get("/v2/models/cities")).json()
            assert meta["inputs"][0] == {"name": "city", "datatype": "BYTES", "shape": [-1]}
            r = await http.post("/v2/models/cities/infer", json=body)
            assert r.status_code == 200, r.text
            outputs = {o["name"]: from_json(o) for o in r.json()["outputs"]}
            np.testing.assert_array_equal(outputs["predict_proba"], want)
            records = pd.DataFrame({"city": city, "amount": rows["amount"]}).to_dict("records")
            plain = await http.post(
                "/predict",
                json={"model": "cities", "inputs": records, "outputs": ["predict_proba"]},
            )
            assert plain.status_code == 200, plain.text
            np.testing.assert_array_equal(np.asarray(plain.json()["predict_proba"]), want)

    async def test_an_unseen_city_is_missing_as_for_the_fitted_model(
        self, platform: Platform, client: Client, model: Any
    ) -> None:
        frame, y = city_frame(300)
        client.log_model(model.fit(frame, y), name="cities", input_example=frame)
        unseen = pd.Categorical.from_codes([-1, CITIES.index("Nice")], categories=CITIES)
        rows = pd.DataFrame({"city": unseen, "amount": [0.5, 0.5]})  # Oslo: missing
        want = model.predict_proba(rows)
        body = {
            "inputs": [
                {"name": "city", "datatype": "BYTES", "shape": [2], "data": ["Oslo", "Nice"]},
                {"name": "amount", "datatype": "FP64", "shape": [2], "data": [0.5, 0.5]},
            ]
        }
        async with serve(platform) as http:
            r = await http.post("/v2/models/cities/infer", json=body)
        assert r.status_code == 200, r.text
        got = {o["name"]: from_json(o) for o in r.json()["outputs"]}["predict_proba"]
        np.testing.assert_array_equal(got, want)
