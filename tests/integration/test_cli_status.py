"""`beamops status` as a user runs it: against a live stack, and with nothing running."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "beamops"


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=60)


def test_status_reports_down_services_with_exit_code_7(tmp_path):
    env = dict(os.environ, BEAMOPS_CONFIG=str(tmp_path / "none.json"))
    for service, port in (("REGISTRY", 1), ("DATA", 2), ("TRAINING", 3), ("INFERENCE", 4)):
        env[f"BEAMOPS_{service}_ADDRESS"] = f"127.0.0.1:{port}"
    done = run_cli("--json", "status", env=env)
    assert done.returncode == 7
    rows = json.loads(done.stdout)
    assert [r["health"] for r in rows] == ["DOWN"] * 4


def test_status_against_a_live_stack(stack_env):
    done = run_cli("status", env=stack_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SERVING") == 4


def test_help_everywhere():
    done = subprocess.run([str(BIN), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "status" in done.stdout


def test_usage_errors_exit_2_without_a_traceback():
    done = subprocess.run([str(BIN), "no-such-command"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "No such command" in done.stderr and "Traceback" not in done.stderr
