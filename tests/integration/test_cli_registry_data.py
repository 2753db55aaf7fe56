"""The beamops command line as a user runs it, against the live stack (`beamops-stack up`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.registry import make_onnx

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "beamops"


def cli(env, *args: str, code: int = 0):
    done = subprocess.run([str(BIN), "--json", *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == code, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout) if code == 0 and done.stdout.strip() else done


@pytest.fixture
def onnx_file(tmp_path) -> Path:
    path = tmp_path / "tagger.onnx"
    path.write_bytes(make_onnx())
    return path


def test_models_aliases_iovs_and_audit(stack_env, onnx_file):
    first = cli(stack_env, "models", "publish", "jet-tagger", str(onnx_file), "--metric", "auc=0.91",
                "--reason", "first training")
    assert first[0]["version"] == "1.0" and first[0]["metrics"] == {"auc": 0.91}
    second = cli(stack_env, "models", "publish", "jet-tagger", str(onnx_file), "--type", "1.2.0")
    assert second[0]["version"] == "1.1"

    cli(stack_env, "alias", "set", "jet-tagger", "staging", "1.0", "--reason", "try it")
    cli(stack_env, "alias", "set", "jet-tagger", "staging", "1.1", "--reason", "better")
    assert cli(stack_env, "alias", "resolve", "jet-tagger", "staging")[0]["version"] == "1.1"
    moves = cli(stack_env, "alias", "history", "jet-tagger", "staging")
    assert [(m["from_version"], m["to_version"], m["reason"]) for m in moves] == [
        ("1.0", "1.1", "better"), ("", "1.0", "try it")]

    cli(stack_env, "iov", "create-tag", "tagger-2026", "jet-tagger")
    cli(stack_env, "iov", "append", "tagger-2026", "1000", "1.0")
    cli(stack_env, "iov", "append", "tagger-2026", "2000", "1.1")
    assert cli(stack_env, "iov", "resolve", "tagger-2026", "1999")["version"] == "1.0"
    assert cli(stack_env, "iov", "resolve", "tagger-2026", "2000")["version"] == "1.1"

    history = cli(stack_env, "models", "history", "jet-tagger")
    assert [(m["alias"], m["to_version"]) for m in history] == [("staging", "1.1"), ("staging", "1.0")]

    shown = cli(stack_env, "models", "show", "jet-tagger")
    assert shown["model"]["owner"] == "admin"
    assert {v["version"] for v in shown["versions"]} == {"1.0", "1.1"}
    assert [m["name"] for m in cli(stack_env, "models", "list")] == ["jet-tagger"]

    events = cli(stack_env, "audit", "--model", "jet-tagger")
    actions = [e["action"] for e in events]
    assert actions.count("parameters.create") == 2
    assert actions.count("alias.create") == 1 and actions.count("alias.move") == 1
    assert actions.count("iov.append") == 2 and actions.count("iov_tag.create") == 1
    assert {e["actor"] for e in events} == {"admin"}
    assert next(e for e in events if e["action"] == "alias.move")["reason"] == "better"


def test_errors_have_exit_codes_and_clear_messages(stack_env, onnx_file):
    missing = cli(stack_env, "models", "show", "no-such-model", code=3)
    assert "no-such-model" in missing.stderr and "request id" in missing.stderr
    bad = cli(stack_env, "models", "publish", "bad/name", str(onnx_file), code=5)
    assert "/" in bad.stderr or "name" in bad.stderr
    cli(stack_env, "iov", "resolve", "no-such-tag", "5", code=3)
    unauth = subprocess.run([str(BIN), "--token", "bmo_wrong", "models", "list"], env=stack_env,
                            capture_output=True, text=True)
    assert unauth.returncode == 4 and "revoked" in unauth.stderr


def test_datasets_from_the_real_root_files(stack_env):
    added = cli(stack_env, "datasets", "add", "zmumu", "uproot-Zmumu.root", "--tree", "events",
                "--branch", "px1", "--branch", "py1")
    version = added[0]["version_id"]
    assert added[0]["entries"] == 2304
    again = cli(stack_env, "datasets", "add", "zmumu", "uproot-Zmumu.root", "--tree", "events",
                "--branch", "px1", "--branch", "py1")
    assert again[0]["version_id"] == version

    split = cli(stack_env, "datasets", "split", "zmumu", version, "--seed", "7")
    assert split[0]["version_id"] != version
    shown = cli(stack_env, "datasets", "show", "zmumu", split[0]["version_id"])
    counts = {s["name"]: int(s["entry_count"]) for s in shown["splits"]}
    assert sum(counts.values()) == 2304 and set(counts) == {"train", "validation", "test"}
    assert [d["dataset"] for d in cli(stack_env, "datasets", "list")] == ["zmumu"]
    refused = cli(stack_env, "datasets", "add", "x", "../../etc/passwd", "--tree", "events", code=4)
    assert "/etc" not in refused.stderr.replace("../../etc/passwd", "")


def test_datasets_add_a_folder_with_progress_and_common_branches(stack, tmp_path):
    """`datasets add NAME SRC...` with a directory or a quoted glob: the service hashes the files
    (a progress bar on stderr), `--common-branches` keeps what files that differ share."""
    import shutil

    import numpy as np
    import uproot

    from tests.real_data import ZMUMU

    env = stack[4]
    folder = tmp_path / "data" / "mc"  # the stack's first data root is tmp_path / "data"
    folder.mkdir(parents=True)
    for i in range(3):
        shutil.copyfile(ZMUMU, folder / f"zmumu_{i}.root")
    subset = ["Run", "Event", "M"]
    with uproot.open(ZMUMU) as f:
        arrays = f["events"].arrays(subset, library="np")
    with uproot.recreate(folder / "zmumu_3_slim.root") as out:
        out.mktree("events", {b: arrays[b].dtype for b in subset}).extend(
            {b: np.asarray(arrays[b]) for b in subset})

    differ = cli(env, "datasets", "add", "mc", "mc/", "--tree", "events", code=5)
    assert "'mc/zmumu_3_slim.root'" in differ.stderr and "'Type'" in differ.stderr, differ.stderr
    assert "common_branches" in differ.stderr  # the message says what to do

    added = cli(env, "datasets", "add", "mc", "mc/", "--tree", "events", "--common-branches")
    assert len(added) == 1 and added[0]["entries"] == 4 * 2304
    assert set(added[0]) == {"dataset", "version_id", "content_hash", "entries", "description",
                             "created_by", "created"}  # the --json shape of `datasets add`
    shown = cli(env, "datasets", "show", "mc", added[0]["version_id"])
    assert shown["schema"]["tree_name"] == "events"
    assert [b["name"] for b in shown["schema"]["branches"]] == subset
    assert len(shown["files"]) == 4

    by_glob = cli(env, "datasets", "add", "mc", "mc/*.root", "mc/zmumu_0.root", "--tree", "events",
                  "--common-branches")
    assert by_glob[0]["version_id"] == added[0]["version_id"]

    people = subprocess.run([str(BIN), "datasets", "add", "mc", "mc", "--tree", "events",
                             "--common-branches"], env=dict(env, COLUMNS="200"), capture_output=True,
                            text=True, timeout=120)
    assert people.returncode == 0, people.stderr
    assert "hashing mc" in people.stderr and "4/4 files" in people.stderr, people.stderr
    assert added[0]["version_id"] in people.stdout
