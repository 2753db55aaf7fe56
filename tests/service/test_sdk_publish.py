"""The SDK publishes in-memory scikit-learn models as ONNX; embedded load_model runs them."""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import beamops
from beamops.api.registry import to_onnx
from beamops.registry.server import create_server
from beamops.registry.settings import RegistrySettings

from tests.fixtures.services import running


@pytest.fixture
def fitted():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] ** 2 > 0.5).astype(int)
    return make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=300, random_state=0)).fit(x, y), x


def test_exported_model_predicts_what_the_native_one_does(fitted):
    model, x = fitted
    session = ort.InferenceSession(to_onnx(model))
    label, probabilities = session.run(None, {"input": x})
    native = model.predict_proba(x)
    np.testing.assert_allclose(probabilities, native, atol=1e-4)
    clear = np.abs(native[:, 1] - 0.5) > 1e-3  # float32 vs float64 may flip a coin-toss event
    np.testing.assert_array_equal(label[clear], model.predict(x)[clear])


def test_things_that_are_not_models_are_refused():
    with pytest.raises(TypeError, match="scikit-learn"):
        to_onnx({"weights": [1, 2]})


async def test_publish_model_registers_an_onnx_version(fitted, tokens, tmp_path):
    model, x = fitted
    settings = RegistrySettings(port=0, var_dir=tmp_path / "registry", tokens_file=tokens.path)
    async with running(create_server, settings) as (server, _):
        target = f"127.0.0.1:{server.port}"
        version, blob = await asyncio.to_thread(publish, target, tokens, model)
    assert version.version == "1.0" and version.metrics == {"auc": 0.9}
    _, probabilities = ort.InferenceSession(blob).run(None, {"input": x[:10]})
    np.testing.assert_allclose(probabilities, model.predict_proba(x[:10]), atol=1e-4)


def publish(target, tokens, model):
    with beamops.Client(tokens.publisher, registry_address=target) as client:
        version = client.registry.publish_model("sk-tagger", model, metrics={"auc": 0.9})
        return version, b"".join(client.registry.download(version.artifact_id))


def test_xgboost_models_export_too():
    import xgboost

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    classifier = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(x, (x[:, 0] > 0).astype(int))
    _, probabilities = ort.InferenceSession(to_onnx(classifier)).run(None, {"input": x})
    np.testing.assert_allclose(probabilities, classifier.predict_proba(x), atol=1e-5)
    regressor = xgboost.XGBRegressor(n_estimators=10).fit(x, 2 * x[:, 0])
    (prediction,) = ort.InferenceSession(to_onnx(regressor)).run(None, {"input": x})
    np.testing.assert_allclose(prediction.ravel(), regressor.predict(x), atol=1e-5)
