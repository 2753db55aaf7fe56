"""Deploy, predict, roll back and watch drift from the command line, against the live stack
(whose inference service runs the bundled Triton)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import onnxruntime as ort

from tests.fixtures.registry import make_onnx
from tests.integration.test_cli_registry_data import BIN, cli


def test_deploy_predict_rollback_undeploy(stack_env, tmp_path):
    onnx_path = tmp_path / "tagger.onnx"
    onnx_path.write_bytes(make_onnx())
    cli(stack_env, "models", "publish", "tagger", str(onnx_path))
    cli(stack_env, "models", "publish", "tagger", str(onnx_path))
    cli(stack_env, "alias", "set", "tagger", "staging", "1.0")

    deployed = cli(stack_env, "deploy", "tagger", "--alias", "staging", "--reason", "first light")
    assert deployed[0]["state"] == "READY" and deployed[0]["version"] == "1.0"
    listed = cli(stack_env, "deployments")
    assert [(d["name"], d["version"], d["following_alias"]) for d in listed] == [("tagger", "1.0", "staging")]

    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"x": x.tolist()}))
    answer = cli(stack_env, "predict", "tagger", "--inputs", str(inputs))
    expected = ort.InferenceSession(str(onnx_path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.asarray(answer["outputs"]["y"], dtype=np.float32), expected)
    assert answer["version"] == "1.0" and answer["deployment"] == "tagger"

    report = cli(stack_env, "drift", "tagger")
    assert report["available"] is False and report["unavailable_reason"]

    bad = subprocess.run([str(BIN), "predict", "tagger"], input=json.dumps({"x": [[1.0, 2.0]]}),
                         env=stack_env, capture_output=True, text=True)
    assert bad.returncode == 5 and "x" in bad.stderr and "Traceback" not in bad.stderr

    cli(stack_env, "deploy", "tagger", "--version", "1.1", "--replace", "--reason", "try 1.1")
    rolled = cli(stack_env, "rollback", "tagger", "--reason", "1.1 misbehaves")
    assert rolled[0]["version"] == "1.0"
    cli(stack_env, "undeploy", "tagger")
    assert cli(stack_env, "deployments") == []
    cli(stack_env, "predict", "tagger", "--inputs", str(inputs), code=3)
    actions = [e["action"] for e in cli(stack_env, "audit", "--model", "tagger", "--action", "deployment")]
    assert actions, "deployment changes are in the registry's audit log"
