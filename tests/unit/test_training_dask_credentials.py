"""Dask's own credentials (docs/security.md, threat 13): no user token in a task's arguments, the
workers' reader token, the cluster's TLS certificates, and the training service's TLS settings."""

from __future__ import annotations

import inspect
import stat
import subprocess

import pytest
from pydantic import ValidationError

from beamops.common.v1 import auth_pb2
from beamops.runtime.auth import TokenStore
from beamops.training.cluster_secrets import ensure_worker_token, main, make_tls, tls_files
from beamops.training.executor import DaskExecutor, LocalExecutor
from beamops.training.settings import TrainingSettings
from beamops.training.worker import WORKER_TOKEN_ENV, run_on_dask, worker_data_token


def test_the_dask_task_takes_no_credential():
    assert list(inspect.signature(run_on_dask).parameters) == ["payload"]
    assert DaskExecutor.forwards_caller_token is False
    assert LocalExecutor.forwards_caller_token is True  # stdin of a local child process


def test_the_worker_reads_its_own_token_from_its_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(WORKER_TOKEN_ENV, raising=False)
    token, why = worker_data_token()
    assert token is None and WORKER_TOKEN_ENV in why
    monkeypatch.setenv(WORKER_TOKEN_ENV, str(tmp_path / "missing"))
    token, why = worker_data_token()
    assert token is None and "cannot read" in why and str(tmp_path) not in why
    (tmp_path / "token").write_text("bmo_worker\n")
    monkeypatch.setenv(WORKER_TOKEN_ENV, str(tmp_path / "token"))
    assert worker_data_token() == ("bmo_worker", "")


def test_the_worker_token_is_a_reader_token_kept_while_valid(tmp_path):
    tokens, token_file = tmp_path / "auth" / "tokens.json", tmp_path / "worker" / "data-token"
    assert ensure_worker_token(tokens, token_file)
    token = token_file.read_text().strip()
    principal = TokenStore(tokens).authenticate(token)
    assert (principal.name, principal.role) == ("dask-worker", auth_pb2.ROLE_READER)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert not ensure_worker_token(tokens, token_file)  # still valid: kept
    assert token_file.read_text().strip() == token
    TokenStore(tokens).revoke("dask-worker")
    assert ensure_worker_token(tokens, token_file)  # revoked: replaced
    assert TokenStore(tokens).authenticate(token_file.read_text().strip()) is not None
    assert list(TokenStore(tokens).names()) == ["dask-worker"]


def test_tls_certificates_chain_to_a_ca_whose_key_is_not_kept(tmp_path):
    assert make_tls(tmp_path / "tls")
    files = tls_files(tmp_path / "tls")
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == sorted(p.name for p in files.values())
    for role in ("scheduler", "worker", "client"):
        assert stat.S_IMODE(files[f"{role}_key"].stat().st_mode) == 0o600
        verified = subprocess.run(["openssl", "verify", "-CAfile", str(files["ca"]), str(files[f"{role}_cert"])],
                                  capture_output=True, text=True)
        assert verified.returncode == 0, verified.stderr
    before = {name: p.read_bytes() for name, p in files.items()}
    assert not make_tls(tmp_path / "tls")  # there already: unchanged (a running cluster keeps working)
    assert {name: p.read_bytes() for name, p in files.items()} == before


def test_the_init_job_command(tmp_path, capsys):
    argv = [f"--tls-dir={tmp_path / 'tls'}", f"--tokens-file={tmp_path / 'tokens.json'}",
            f"--worker-token-file={tmp_path / 'worker-token'}"]
    main(argv)
    main(argv)
    out = capsys.readouterr().out
    assert "written to" in out and "already in" in out and "still valid" in out
    assert "bmo_" not in out  # the token is never printed


def test_dask_tls_settings_go_together(tmp_path):
    make_tls(tmp_path)
    files = tls_files(tmp_path)
    tls = dict(dask_tls_ca_file=files["ca"], dask_tls_cert_file=files["client_cert"],
               dask_tls_key_file=files["client_key"])
    assert TrainingSettings().dask_security() is None  # local dev: plain tcp, as before
    settings = TrainingSettings(dask_scheduler="tls://scheduler:8786", **tls)
    security = settings.dask_security()
    assert security.require_encryption and security.tls_client_cert == str(files["client_cert"])
    with pytest.raises(ValidationError, match="go together"):
        TrainingSettings(dask_scheduler="tls://scheduler:8786", dask_tls_ca_file=files["ca"])
    with pytest.raises(ValidationError, match="tls:// address"):
        TrainingSettings(dask_scheduler="tcp://scheduler:8786", **tls)
    with pytest.raises(ValidationError, match="needs dask_tls_ca_file"):
        TrainingSettings(dask_scheduler="tls://scheduler:8786")
    with pytest.raises(OSError):  # a missing file stops the service at start
        TrainingSettings(dask_scheduler="tls://scheduler:8786",
                         **{**tls, "dask_tls_key_file": tmp_path / "nope.key"}).dask_security()
