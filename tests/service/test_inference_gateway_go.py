"""The gateway's own Go tests (validation, status details, auth cache, usage, routes, the wire
codec, forwarding and Predict against in-process stand-ins) run as part of the suite."""

from __future__ import annotations

import subprocess

from tests.fixtures.gateway import BINARY


def test_go_vet_and_go_test_pass(gateway_binary):
    module = BINARY.parent.parent
    for command in (["go", "vet", "./..."], ["go", "test", "-count=1", "./..."]):
        done = subprocess.run(command, cwd=module, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "FAIL" not in done.stdout
