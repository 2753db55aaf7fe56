"""Limits on submitted work, the pure parts: what a worker's exit means, which time limit applies,
what the Dask task requests, and the worker really limiting itself (in a subprocess)."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import replace

import pytest
from pydantic import ValidationError

from beamops.runtime.errors import InvalidArgument
from beamops.training.limits import (JobLimits, dask_memory_request, exit_message, format_bytes, format_seconds,
                                     parse_cpu_seconds, resolve_timeout, timeout_message)
from beamops.training.settings import TrainingSettings
from beamops.training.spec import DatasetRef, ModelChoice, TrainingSpec, validate_spec
from beamops.training.worker import _out_of_memory

GiB = 1024**3
LIMITS = JobLimits(memory_bytes=4 * GiB, cpu_s=3600)


def test_sizes_and_durations_read_like_a_person_wrote_them():
    assert format_bytes(4 * GiB) == "4 GiB"
    assert format_bytes(1536 * 1024**2) == "1.5 GiB"
    assert format_bytes(512) == "512 bytes"
    assert format_seconds(3600) == "3600 s (1 h)"
    assert format_seconds(90) == "90 s"
    assert format_seconds(300) == "300 s (5 min)"


def test_sigxcpu_is_the_cpu_limit_with_its_value_and_setting():
    message = exit_message(-signal.SIGXCPU, LIMITS)
    assert "more than 3600 s (1 h) of CPU time" in message and "job_cpu_limit_s" in message
    assert "signal" not in message and "-24" not in message


def test_a_sigkill_after_the_cpu_time_was_used_is_the_cpu_limits_hard_end():
    assert "job_cpu_limit_s" in exit_message(-signal.SIGKILL, LIMITS, cpu_used_s=3600.5)


def test_another_sigkill_is_not_blamed_on_a_limit_but_named_in_words():
    message = exit_message(-signal.SIGKILL, LIMITS, cpu_used_s=12.0)
    assert "SIGKILL" in message and "out of memory" in message
    assert "job_cpu_limit_s" not in message and "-9" not in message


def test_a_crash_under_a_memory_limit_names_the_limit():
    message = exit_message(-signal.SIGABRT, LIMITS)
    assert "4 GiB" in message and "job_memory_limit_bytes" in message and "SIGABRT" in message
    assert "job_memory_limit_bytes" not in exit_message(-signal.SIGABRT, JobLimits())


def test_an_exit_code_is_reported_as_such():
    assert "exited with code 3" in exit_message(3, LIMITS)


def test_the_workers_memory_error_names_the_limit_it_ran_into():
    message = _out_of_memory({"limits": LIMITS.to_dict()})
    assert message.startswith("the job used more than 4 GiB of memory") and "job_memory_limit_bytes" in message
    assert "job_memory_limit_bytes" not in _out_of_memory({})  # on Dask: no limit of its own


def test_the_specs_timeout_wins_else_the_services_default():
    assert resolve_timeout(120.0, 21600.0) == (120.0, True)
    assert resolve_timeout(0.0, 21600.0) == (21600.0, False)
    assert "time limit of 120 s (2 min) and was stopped (the limit is the timeout its spec" in timeout_message(
        120.0, True, 172800.0)
    default = timeout_message(21600.0, False, 172800.0)
    assert "time limit of 21600 s (6 h) and was stopped (the limit is job_timeout_s" in default
    assert "172800 s" in default


def test_a_spec_asking_for_more_time_than_allowed_is_refused_naming_the_field():
    spec = TrainingSpec(features=("a",), model=ModelChoice(builtin="mlp", task="regression"),
                        dataset=DatasetRef("d", "v1"), label_branch="y", timeout_s=7200.0)
    assert validate_spec(spec, max_timeout_s=7200.0).timeout_s == 7200.0
    with pytest.raises(InvalidArgument, match="max_job_timeout_s") as err:
        validate_spec(replace(spec, timeout_s=7201.0), max_timeout_s=7200.0)
    assert err.value.field == "spec.timeout"


def test_settings_have_safe_defaults_and_refuse_a_default_timeout_over_the_maximum(tmp_path):
    settings = TrainingSettings(var_dir=tmp_path)
    assert settings.job_memory_limit_bytes == 4 * GiB and settings.job_cpu_limit_s > 0
    assert 0 < settings.job_timeout_s <= settings.max_job_timeout_s
    assert settings.max_queued_jobs_per_user == 20 and settings.max_queued_jobs >= settings.max_queued_jobs_per_user
    with pytest.raises(ValidationError, match="max_job_timeout_s"):
        TrainingSettings(var_dir=tmp_path, job_timeout_s=100, max_job_timeout_s=50)


def test_cpu_time_is_read_from_a_proc_stat_line_even_with_odd_command_names():
    fields = ["S"] + ["0"] * 10 + ["250", "50"] + ["0"] * 30
    assert parse_cpu_seconds("1234 (py thon) x)) " + " ".join(fields), 100) == 3.0
    assert parse_cpu_seconds("garbage", 100) is None


def test_dask_requests_memory_only_from_workers_that_declare_it():
    assert dask_memory_request({"w1": {"resources": {}}}, 4 * GiB) == (None, "")
    assert dask_memory_request({"w1": {"resources": {"MEMORY": 8 * GiB}}}, 4 * GiB) == ({"MEMORY": 4 * GiB}, "")
    assert dask_memory_request({"w1": {"resources": {"MEMORY": 8 * GiB}}}, 0) == (None, "")
    resources, problem = dask_memory_request({"w1": {"resources": {"MEMORY": 2 * GiB}}}, 4 * GiB)
    assert resources is None and "2 GiB" in problem and "job_memory_limit_bytes" in problem
    assert "w1" not in problem


LIMITED = """
import os, resource, sys
from beamops.training.limits import JobLimits, apply_in_worker
apply_in_worker(JobLimits(memory_bytes=256 * 1024**2, cpu_s=30))
soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
assert soft == hard == 256 * 1024**2, (soft, hard)
soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
assert soft == 30 and hard == 35, (soft, hard)
assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
if os.geteuid() != 0:  # root (CAP_SYS_RESOURCE) may raise a hard limit; the service's image runs as a user
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (2 * 1024**3, 2 * 1024**3))
        sys.exit("the job could raise its own memory limit")
    except (ValueError, OSError):
        pass
try:
    block = bytearray(1024**3)
except MemoryError:
    print("refused")
"""


def test_the_worker_limits_itself_and_cannot_lift_the_limits():
    done = subprocess.run([sys.executable, "-c", LIMITED], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"
