"""docs/triton-clients.md as written: its bash and Python blocks run against a stack set up as the
README's walkthrough leaves it (zmumu-mass trained on the Z->mumu file and deployed following
alias production). The stack runs on shifted ports, so the documented ports are shifted too."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from beamops.runtime.stack import GATEWAY_HTTP_PORT, GATEWAY_PORT
from tests.integration.test_cli_registry_data import cli

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "triton-clients.md"
SPEC = ROOT / "examples" / "jobs" / "zmumu_gbt.yaml"

pytestmark = pytest.mark.timeout(600)


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_documented_commands_run_against_the_walkthrough(stack, stack_env):
    offset, tmp_path, _, _, env = stack
    added = cli(stack_env, "datasets", "add", "zmumu", "uproot-Zmumu.root", "--tree", "events")
    cli(stack_env, "datasets", "split", "zmumu", added[0]["version_id"], "--train", "0.6",
        "--validation", "0.2", "--test", "0.2", "--seed", "1")
    cli(stack_env, "train", "submit", str(SPEC), "--watch")
    cli(stack_env, "alias", "set", "zmumu-mass", "production", "1.0", "--reason", "docs")
    cli(stack_env, "deploy", "zmumu-mass", "--alias", "production")

    token = json.loads(Path(env["BEAMOPS_CONFIG"]).read_text())["token"]
    run_env = dict(env, BEAMOPS_TOKEN=token)

    def shifted(text: str) -> str:
        return (text.replace("localhost:8000", f"127.0.0.1:{GATEWAY_HTTP_PORT + offset}")
                    .replace("localhost:50055", f"127.0.0.1:{GATEWAY_PORT + offset}"))

    bash = blocks("bash")
    assert len(bash) == 2, "the doc's bash blocks: curl and perf_analyzer"
    for block in bash:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", shifted(block)], cwd=ROOT, env=run_env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (block, done.stdout[-3000:], done.stderr[-3000:])
        assert "error" not in done.stdout.lower(), done.stdout[-3000:]
    curl_out = subprocess.run(["bash", "-c", shifted(bash[0])], cwd=ROOT, env=run_env, capture_output=True,
                              text=True, timeout=60).stdout
    answers, decoder, at = [], json.JSONDecoder(), 0
    while at < len(curl_out.strip()):  # curl prints the answers one after the other
        value, at = decoder.raw_decode(curl_out, at)
        answers.append(value)
    answer = answers[-1]  # the infer call's
    assert answer["model_name"] == "zmumu-mass" and answer["model_version"] == "1.0"
    assert len(answer["outputs"][0]["data"]) == 1

    python = blocks("python")
    # tritonclient, loading, and CMSSW's configuration (which runs inside cmsRun only)
    assert len(python) == 3 and "cms.PSet" in python[2], python
    outputs = []
    for block in python[:2]:
        done = subprocess.run([sys.executable, "-c", shifted(block)], cwd=ROOT, env=run_env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout)
    assert outputs[0].startswith("1.0 "), outputs[0]
    assert outputs[1].strip() == "True", outputs[1]
