"""`beamops train` and `beamops jobs` as a user runs them, on the real Z->mumu file, against the
live stack; the YAML spec is the one the README's walkthrough uses."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_cli_registry_data import cli

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "jobs" / "zmumu_gbt.yaml"


def test_train_watch_show_list_and_cancel(stack_env, tmp_path):
    added = cli(stack_env, "datasets", "add", "zmumu", "uproot-Zmumu.root", "--tree", "events")
    split = cli(stack_env, "datasets", "split", "zmumu", added[0]["version_id"], "--train", "0.6",
                "--validation", "0.2", "--test", "0.2", "--seed", "1")
    assert split[0]["version_id"] in SPEC.read_text(), "the example spec names this split version"

    checked = cli(stack_env, "train", "submit", str(SPEC), "--dry-run")
    assert checked[0]["job_id"] == "" or checked[0]["state"] in ("QUEUED", "UNSPECIFIED")

    done = cli(stack_env, "train", "submit", str(SPEC), "--watch")
    job = done[0]
    assert job["state"] == "SUCCEEDED" and job["model"] == "zmumu-mass" and job["version"] == "1.0"

    shown = cli(stack_env, "jobs", "show", job["job_id"])
    assert shown["result"]["parameters"]["version"] == "1.0"
    assert shown["result"]["onnx_check"]["passed"] is True
    assert [j["job_id"] for j in cli(stack_env, "jobs", "list", "--state", "succeeded")] == [job["job_id"]]
    assert cli(stack_env, "jobs", "watch", job["job_id"])[0]["state"] == "SUCCEEDED"

    lineage = cli(stack_env, "models", "lineage", "zmumu-mass", "1.0")
    assert lineage[0]["lineage"]["datasets"][0]["version_id"] == split[0]["version_id"]
    assert lineage[0]["lineage"]["training_job"]["job_id"] == job["job_id"]

    slow = tmp_path / "slow.yaml"
    slow.write_text(SPEC.read_text().replace("max_iter: 60", "max_iter: 10000"))
    queued = cli(stack_env, "train", "submit", str(slow))
    cancelled = cli(stack_env, "jobs", "cancel", queued[0]["job_id"], "--reason", "changed my mind")
    assert cancelled[0]["state"] in ("CANCELLED", "RUNNING", "QUEUED")
    final = cli(stack_env, "jobs", "watch", queued[0]["job_id"], code=1)
    assert "CANCELLED" in final.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.read_text().replace("label_branch: M", "label_brnch: M"))
    refused = cli(stack_env, "train", "submit", str(bad), code=5)
    assert "label_brnch" in refused.stderr and "label_branch" in refused.stderr
