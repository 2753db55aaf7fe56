"""`beamops token` as an administrator runs it: the new token works, the revoked one stops."""

from __future__ import annotations

import subprocess

from tests.integration.test_cli_registry_data import BIN, cli


def test_create_use_revoke(stack_env, stack):
    _, tmp_path, _, _, _ = stack
    tokens_file = str(tmp_path / "var" / "auth" / "tokens.json")
    created = cli(stack_env, "token", "create", "alice", "--role", "reader", "--tokens-file", tokens_file)
    alice = dict(stack_env, BEAMOPS_TOKEN=created["token"])
    assert cli(alice, "models", "list") == []
    denied = subprocess.run([str(BIN), "models", "publish", "m", __file__], env=alice, capture_output=True, text=True)
    assert denied.returncode == 4 and "publisher" in denied.stderr

    names = {t["name"]: t["role"] for t in cli(stack_env, "token", "list", "--tokens-file", tokens_file)}
    assert names["alice"] == "reader" and names["admin"] == "admin"
    assert created["token"] not in (tmp_path / "var" / "auth" / "tokens.json").read_text()

    cli(stack_env, "token", "revoke", "alice", "--tokens-file", tokens_file)
    revoked = subprocess.run([str(BIN), "models", "list"], env=alice, capture_output=True, text=True)
    assert revoked.returncode == 4 and "revoked" in revoked.stderr
    again = cli(stack_env, "token", "revoke", "alice", "--tokens-file", tokens_file, code=3)
    assert "alice" in again.stderr
    bad_role = cli(stack_env, "token", "create", "bob", "--role", "root", "--tokens-file", tokens_file, code=5)
    assert "reader, publisher, deployer, admin" in bad_role.stderr
