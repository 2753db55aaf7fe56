"""``beamops train | jobs``: training jobs from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from ..root import app

train = typer.Typer(help="Train a model from a job spec (YAML).", no_args_is_help=True)
jobs = typer.Typer(help="Training jobs: list, show, cancel.", no_args_is_help=True)
app.add_typer(train, name="train")
app.add_typer(jobs, name="jobs")

COLUMNS = ["job", "state", "done", "by", "model", "version", "message"]


def _row(j):
    return (j.job_id, j.state, f"{j.fraction_done:.0%}", j.submitted_by, j.model, j.version, j.failure_message)


def _record(j) -> dict:
    return {k: v for k, v in j.__dict__.items() if k != "raw"}


@train.command("submit")
def submit(ctx: typer.Context, spec: Path = typer.Argument(..., exists=True, dir_okay=False, help="Job spec YAML."),
           watch: bool = typer.Option(False, "--watch", help="Follow the job with a progress bar until it ends."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Only check the spec.")) -> None:
    """Submit a training job. With --watch, exit 0 only if it succeeds."""
    training = ctx.obj.client.training
    job = training.submit(spec, validate_only=dry_run)
    if watch and not dry_run:
        job = training.follow(job.job_id, progress=not ctx.obj.out.json_mode)
    ctx.obj.out.table("job", COLUMNS, [_row(job)], records=[_record(job)])
    if watch and job.state != "SUCCEEDED":
        raise typer.Exit(1)


@jobs.command("list")
def list_jobs(ctx: typer.Context, state: List[str] = typer.Option([], help="Only these states (repeatable)."),
              user: str = typer.Option("", help="Only jobs submitted by this user."),
              limit: int = typer.Option(50)) -> None:
    """List jobs, newest first."""
    found = ctx.obj.client.training.list(state, user, limit)
    ctx.obj.out.table("jobs", COLUMNS, [_row(j) for j in found], records=[_record(j) for j in found])


@jobs.command("show")
def show(ctx: typer.Context, job_id: str) -> None:
    """One job: spec, state (REJECTED: below a quality gate, nothing registered), progress, metrics,
    quality gates, result."""
    job = ctx.obj.client.training.get(job_id)
    if ctx.obj.out.json_mode:
        ctx.obj.out.json(job.raw)
        return
    ctx.obj.out.record(f"job {job.job_id}", {
        "state": job.state, "submitted by": job.submitted_by, "done": f"{job.fraction_done:.0%}",
        "metrics": job.metrics, "registered": f"{job.model} {job.version}" if job.version else "",
        "quality gates": {g.get("gate", ""): f"{g.get('value', float('nan')):.6g} "
                          f"({'passed' if g.get('passed') else 'missed'})"
                          for g in job.raw.get("result", {}).get("quality_gates", [])},
        "failure": job.failure_message,
    })


@jobs.command("watch")
def watch(ctx: typer.Context, job_id: str) -> None:
    """Follow a job with a progress bar until it ends; exit 0 only if it succeeds."""
    job = ctx.obj.client.training.follow(job_id, progress=not ctx.obj.out.json_mode)
    ctx.obj.out.table("job", COLUMNS, [_row(job)], records=[_record(job)])
    if job.state != "SUCCEEDED":
        raise typer.Exit(1)


@jobs.command("cancel")
def cancel(ctx: typer.Context, job_id: str, reason: str = typer.Option("", help="Why.")) -> None:
    """Stop a job (the work really stops)."""
    job = ctx.obj.client.training.cancel(job_id, reason)
    ctx.obj.out.table("cancelled", COLUMNS, [_row(job)], records=[_record(job)])
