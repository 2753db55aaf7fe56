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


def test_restricted_models_and_grants(stack_env, stack, tmp_path):
    from tests.fixtures.registry import make_onnx

    _, stack_tmp, _, _, _ = stack
    tokens_file = str(stack_tmp / "var" / "auth" / "tokens.json")
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(make_onnx())
    cli(stack_env, "models", "publish", "calib", str(onnx_path))
    assert cli(stack_env, "models", "restrict", "calib", "--reason", "frozen for the run")["restricted"] is True

    bob = dict(stack_env, BEAMOPS_TOKEN=cli(stack_env, "token", "create", "bob", "--role", "publisher",
                                            "--tokens-file", tokens_file)["token"])
    refused = cli(bob, "models", "publish", "calib", str(onnx_path), code=4)
    assert "calib" in refused.stderr

    cli(stack_env, "models", "grant", "calib", "bob", "--role", "publisher", "--reason", "bob calibrates")
    assert cli(stack_env, "models", "permissions", "calib") == [
        {"principal": "bob", "role": "publisher", "granted_by": "admin"}]
    assert cli(bob, "models", "publish", "calib", str(onnx_path))[0]["version"] == "1.1"

    cli(stack_env, "models", "revoke", "calib", "bob")
    cli(bob, "models", "publish", "calib", str(onnx_path), code=4)
    actions = [e["action"] for e in cli(stack_env, "audit", "--model", "calib", "--action", "permission")]
    assert sorted(actions) == ["permission.remove", "permission.set"]


def test_remote_token_administration_goes_through_the_registry(stack_env, stack):
    """--remote: no tokens file in reach (another machine), the change is audited."""
    created = cli(stack_env, "token", "create", "carol", "--role", "publisher", "--remote",
                  "--reason", "new shifter", "--tokens-file", "/nonexistent/tokens.json")
    carol = dict(stack_env, BEAMOPS_TOKEN=created["token"])
    assert cli(carol, "models", "list") == []  # works on the registry at once
    names = {t["name"]: t["role"] for t in cli(stack_env, "token", "list", "--remote")}
    assert names["carol"] == "publisher" and names["admin"] == "admin"
    refused = cli(carol, "token", "list", "--remote", code=4)  # a publisher is no admin
    assert "admin" in refused.stderr
    cli(stack_env, "token", "revoke", "carol", "--remote", "--reason", "left the shift")
    revoked = subprocess.run([str(BIN), "models", "list"], env=carol, capture_output=True, text=True)
    assert revoked.returncode == 4
    actions = [(e["action"], e["reason"]) for e in cli(stack_env, "audit", "--action", "token")]
    assert sorted(actions) == [("token.create", "new shifter"), ("token.revoke", "left the shift")]
