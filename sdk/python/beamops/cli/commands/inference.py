"""``beamops deploy | undeploy | deployments | rollback | predict | drift``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..root import app

COLUMNS = ["deployment", "model", "version", "state", "follows", "since", "changed by", "reason"]


def _row(d):
    since = d.serving_since.isoformat(timespec="seconds") if d.serving_since else ""
    return (d.name, d.model, d.version, d.state, d.following_alias, since, d.changed_by, d.change_reason)


def _record(d) -> dict:
    return {k: v for k, v in d.__dict__.items() if k != "raw"}


@app.command()
def deploy(ctx: typer.Context, model: str,
           version: Optional[str] = typer.Option(None, help="A parameters version, e.g. 1.2."),
           alias: Optional[str] = typer.Option(None, help="Follow an alias (moves when the alias moves)."),
           global_tag: Optional[str] = typer.Option(None, help="A global tag (with --run)."),
           run: Optional[int] = typer.Option(None, help="Run number for --global-tag."),
           name: str = typer.Option("", help="Deployment name (default: the model name)."),
           max_batch_size: int = typer.Option(0, help="Largest batch Triton forms (0: default)."),
           replace: bool = typer.Option(False, help="Switch an existing deployment without downtime."),
           reason: str = typer.Option("", help="Why (kept in the audit log).")) -> None:
    """Deploy a model onto Triton; returns when it is ready to answer."""
    if not (version or alias or global_tag):
        raise typer.BadParameter("give --version, --alias, or --global-tag with --run")
    d = ctx.obj.client.inference.deploy(model, version=version, alias=alias, global_tag=global_tag, run=run,
                                        name=name, max_batch_size=max_batch_size, replace=replace, reason=reason)
    ctx.obj.out.table("deployed", COLUMNS, [_row(d)], records=[_record(d)])


@app.command()
def undeploy(ctx: typer.Context, name: str, reason: str = typer.Option("", help="Why.")) -> None:
    """Stop serving a deployment."""
    ctx.obj.client.inference.undeploy(name, reason)
    ctx.obj.out.record("undeployed", {"deployment": name})


@app.command()
def rollback(ctx: typer.Context, name: str, reason: str = typer.Option("", help="Why.")) -> None:
    """Go back to the version served before the last change (one step, for 3 A.M.)."""
    d = ctx.obj.client.inference.rollback(name, reason)
    ctx.obj.out.table("rolled back", COLUMNS, [_row(d)], records=[_record(d)])


@app.command()
def deployments(ctx: typer.Context, model: str = typer.Option("", help="Only this model.")) -> None:
    """What is deployed: version, state, since when, by whom."""
    found = ctx.obj.client.inference.list(model)
    ctx.obj.out.table("deployments", COLUMNS, [_row(d) for d in found], records=[_record(d) for d in found])


@app.command()
def predict(ctx: typer.Context, deployment: str,
            inputs: Optional[Path] = typer.Option(None, "--inputs", exists=True, dir_okay=False,
                                                  help='JSON {"name": [[...]], ...} (default: stdin).'),
            dtype: str = typer.Option("float32", help="numpy dtype of the inputs.")) -> None:
    """Send inputs (JSON) to a deployment and print the outputs."""
    text = inputs.read_text() if inputs else sys.stdin.read()
    try:
        arrays = {name: np.asarray(values, dtype=dtype) for name, values in json.loads(text).items()}
    except (ValueError, TypeError) as error:
        raise typer.BadParameter(f"inputs must be JSON {{name: nested list of numbers}}: {error}") from error
    p = ctx.obj.client.inference.predict(deployment, arrays)
    result = {"deployment": p.deployment, "model": p.model, "version": p.version,
              "outputs": {name: array.tolist() for name, array in p.outputs.items()}}
    if ctx.obj.out.json_mode:
        ctx.obj.out.json(result)
    else:
        ctx.obj.out.record(f"{p.model} {p.version} via {p.deployment}", result["outputs"])


@app.command()
def drift(ctx: typer.Context, deployment: str) -> None:
    """Drift of live inputs and outputs against the training data (PSI, KS per feature)."""
    report = ctx.obj.client.inference.drift(deployment)
    if ctx.obj.out.json_mode:
        ctx.obj.out.json(report.__dict__)
        return
    if not report.available:
        ctx.obj.out.record(f"drift of {deployment}", {"available": False, "why": report.unavailable_reason})
        return
    rows = [(f.get("feature"), f"{f.get('psi', 0):.3f}", f"{f.get('ks_statistic', 0):.3f}",
             "yes" if f.get("psi_exceeded") or f.get("ks_exceeded") else "", f.get("sample_count"))
            for f in report.features]
    ctx.obj.out.table(f"drift of {deployment} ({report.window_samples} samples)",
                      ["feature", "PSI", "KS", "drifting", "samples"], rows)
