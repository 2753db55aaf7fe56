"""``beamops models | alias | iov | audit``: the registry from the shell."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

import typer

from ...api.iov import parse_point
from ..root import app

models = typer.Typer(help="Models and their parameters versions.", no_args_is_help=True)
alias = typer.Typer(help="Movable names (production, staging, ...) for parameters versions.", no_args_is_help=True)
iov = typer.Typer(help="Intervals of validity: which version is valid for which run.", no_args_is_help=True)
app.add_typer(models, name="models")
app.add_typer(alias, name="alias")
app.add_typer(iov, name="iov")


def _version_row(v):
    metrics = ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.metrics.items()))
    return (v.model, v.version, v.model_type_version, ", ".join(v.aliases), metrics, v.created_by,
            v.created.isoformat(timespec="seconds") if v.created else "")


VERSION_COLUMNS = ["model", "version", "type", "aliases", "metrics", "created by", "created"]


@models.command("list")
def list_models(ctx: typer.Context, prefix: str = typer.Option("", help="Only names starting with this.")) -> None:
    """List models."""
    rows = ctx.obj.client.registry.list_models(prefix)
    ctx.obj.out.table("models", ["name", "owner", "description"],
                      [(m.name, m.owner, m.description) for m in rows])


@models.command("show")
def show_model(ctx: typer.Context, name: str) -> None:
    """A model and its parameters versions, newest first."""
    registry = ctx.obj.client.registry
    model = registry.get_model(name)
    versions = registry.list_versions(name)
    if ctx.obj.out.json_mode:
        ctx.obj.out.json({"model": model.__dict__, "versions": [v.__dict__ for v in versions]})
        return
    ctx.obj.out.record(f"model {model.name}", {"owner": model.owner, "description": model.description,
                                              "tags": model.tags})
    ctx.obj.out.table("parameters versions", VERSION_COLUMNS, [_version_row(v) for v in versions])


@models.command("publish")
def publish(ctx: typer.Context, name: str, onnx_file: Path = typer.Argument(..., exists=True, dir_okay=False),
            type_version: str = typer.Option("1.0.0", "--type", help="Model type version MAJOR.MINOR.PATCH."),
            metric: List[str] = typer.Option([], help="Metric as name=value (repeatable)."),
            reason: str = typer.Option("", help="Why (kept in the audit log).")) -> None:
    """Publish an ONNX file as a new parameters version (the registry picks the version)."""
    metrics = {}
    for item in metric:
        key, _, value = item.partition("=")
        try:
            metrics[key] = float(value)
        except ValueError:
            raise typer.BadParameter(f"metric {item!r} is not name=number", param_hint="--metric") from None
    version = ctx.obj.client.registry.publish_onnx(name, onnx_file, type_version, metrics, reason=reason)
    ctx.obj.out.table("published", VERSION_COLUMNS, [_version_row(version)], records=[version.__dict__])


@models.command("history")
def history(ctx: typer.Context, name: str,
            alias_name: str = typer.Option("", "--alias", help="Only this alias.")) -> None:
    """Every alias move of a model: who, when, from, to, why."""
    moves = ctx.obj.client.registry.alias_history(name, alias_name)
    ctx.obj.out.table(f"alias history of {name}", ["alias", "from", "to", "by", "when", "reason"],
                      [(m.alias, m.from_version, m.to_version, m.actor,
                        m.time.isoformat(timespec="seconds") if m.time else "", m.reason) for m in moves],
                      records=[m.__dict__ for m in moves])


@models.command("lineage")
def lineage(ctx: typer.Context, name: str, version: str) -> None:
    """Where a version came from: datasets, job, hyperparameters, seed, code, parents."""
    chain = ctx.obj.client.registry.lineage(name, version)
    if ctx.obj.out.json_mode:
        ctx.obj.out.json([{"version": v.version, "lineage": v.lineage, "metrics": v.metrics} for v in chain])
        return
    for v in chain:
        ctx.obj.out.record(f"{v.model} {v.version} (type {v.model_type_version}, sha256 {v.sha256[:12]})",
                           {key: value for key, value in v.lineage.items()} or {"lineage": "none recorded"})


@models.command("restrict")
def restrict(ctx: typer.Context, name: str,
             open_: bool = typer.Option(False, "--open", help="Lift the restriction instead."),
             reason: str = typer.Option("", help="Why (kept in the audit log).")) -> None:
    """Only the owner, admins and granted principals may change a restricted model."""
    model = ctx.obj.client.registry.restrict(name, not open_, reason)
    ctx.obj.out.record("model", {"name": model.name, "owner": model.owner, "restricted": not open_})


@models.command("grant")
def grant(ctx: typer.Context, name: str, principal: str,
          role: str = typer.Option(..., help="publisher or deployer (what the principal may do to this model)."),
          reason: str = typer.Option("", help="Why (kept in the audit log).")) -> None:
    """Let a user (token or single sign-on name) change a restricted model."""
    ctx.obj.client.registry.grant(name, principal, role, reason)
    ctx.obj.out.record("granted", {"model": name, "principal": principal, "role": role})


@models.command("revoke")
def revoke(ctx: typer.Context, name: str, principal: str,
           reason: str = typer.Option("", help="Why (kept in the audit log).")) -> None:
    """Take a grant back; effective on the principal's next call."""
    ctx.obj.client.registry.revoke(name, principal, reason)
    ctx.obj.out.record("revoked", {"model": name, "principal": principal})


@models.command("permissions")
def permissions(ctx: typer.Context, name: str) -> None:
    """Who may change a model besides its owner and the admins."""
    grants = ctx.obj.client.registry.permissions(name)
    ctx.obj.out.table(f"grants on {name}", ["principal", "role", "granted by"],
                      [(g["principal"], g["role"], g["granted_by"]) for g in grants], records=grants)


@alias.command("set")
def set_alias(ctx: typer.Context, model: str, name: str, version: str,
              reason: str = typer.Option("", help="Why (kept in the history and the audit log)."),
              expect: Optional[str] = typer.Option(None,
                                                   help="Fail unless the alias points at this version now.")) -> None:
    """Point an alias at a version (creates or moves it)."""
    ctx.obj.client.registry.set_alias(model, name, version, reason, expect)
    ctx.obj.out.record("alias set", {"model": model, "alias": name, "version": version})


@alias.command("resolve")
def resolve_alias(ctx: typer.Context, model: str, name: str,
                  at: Optional[datetime] = typer.Option(None,
                                                        help="The version at this time (ISO 8601, UTC).")) -> None:
    """Which version an alias points at (now, or at a past time)."""
    version = ctx.obj.client.registry.resolve_alias(model, name, at)
    ctx.obj.out.table(f"{model}@{name}", VERSION_COLUMNS, [_version_row(version)], records=[version.__dict__])


@alias.command("history")
def alias_history(ctx: typer.Context, model: str, name: str = typer.Argument("")) -> None:
    """Every move of an alias (or of all aliases of a model)."""
    history(ctx, model, name)


def _point(text: str, what: str) -> int:
    try:
        return parse_point(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=what) from None


def _snapshot(text: Optional[str]) -> Optional[datetime]:
    """An ISO 8601 time (``2026-11-01T12:00:00Z``; without a zone: UTC)."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time such as 2026-11-01T12:00:00Z",
                                 param_hint="--snapshot") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


SNAPSHOT_HELP = "Answer as the registry stood at this time (ISO 8601, e.g. 2026-11-01T12:00:00Z; no zone: UTC)."


def _iov_record(entry) -> dict:
    record = dict(entry.__dict__)
    record["created"] = entry.created.isoformat() if entry.created else ""
    return record


@iov.command("create-tag")
def create_tag(ctx: typer.Context, tag: str, model: str,
               kind: str = typer.Option("run", help="run (since = run number), run_lumi (since = RUN:LUMI, "
                                                    "packed run << 32 | lumi) or timestamp (Unix seconds).")) -> None:
    """Create a tag of intervals of validity for a model."""
    if kind not in ("run", "run_lumi", "timestamp"):
        raise typer.BadParameter("choose run, run_lumi or timestamp", param_hint="--kind")
    ctx.obj.client.registry.create_iov_tag(tag, model, kind)
    ctx.obj.out.record("tag created", {"tag": tag, "model": model, "kind": kind})


@iov.command("append")
def append(ctx: typer.Context, tag: str, since: str = typer.Argument(..., help="A run, RUN:LUMI or Unix seconds."),
           version: str = typer.Argument(...),
           reason: str = typer.Option("", help="Why (kept in the audit log).")) -> None:
    """Append "from SINCE on, use VERSION" to a tag. Entries are never edited: a SINCE at or before
    existing ones corrects them for later queries (snapshots from before keep the old answer)."""
    entry = ctx.obj.client.registry.append_iov(tag, _point(since, "SINCE"), version, reason)
    ctx.obj.out.record("appended", _iov_record(entry))


@iov.command("resolve")
def resolve(ctx: typer.Context, tag: str, run: str = typer.Argument(..., help="A run, RUN:LUMI or Unix seconds."),
            snapshot: Optional[str] = typer.Option(None, help=SNAPSHOT_HELP)) -> None:
    """The version valid for a run (the entry with the greatest since <= run, the last inserted of equal sinces)."""
    entry = ctx.obj.client.registry.resolve_iov(tag, _point(run, "RUN"), _snapshot(snapshot))
    ctx.obj.out.record(f"{tag} at {run}" + (f" as of {snapshot}" if snapshot else ""), _iov_record(entry))


@iov.command("list")
def list_iovs(ctx: typer.Context, tag: str, snapshot: Optional[str] = typer.Option(None, help=SNAPSHOT_HELP)) -> None:
    """Every entry of a tag with its insertion time, by since then insertion (corrections included)."""
    entries = ctx.obj.client.registry.list_iovs(tag, _snapshot(snapshot))
    ctx.obj.out.table(f"{tag}" + (f" as of {snapshot}" if snapshot else ""),
                      ["since", "version", "inserted", "by", "reason"],
                      [(e.since, e.version, e.created.isoformat() if e.created else "", e.created_by, e.reason)
                       for e in entries], records=[_iov_record(e) for e in entries])


@app.command()
def audit(ctx: typer.Context, model: str = typer.Option("", help="Only this model."),
          actor: str = typer.Option("", help="Only this user or token name."),
          action: str = typer.Option("", help="Action prefix, e.g. alias."),
          limit: int = typer.Option(50, help="At most this many events.")) -> None:
    """The audit log, newest first: who changed what, when and why."""
    events = ctx.obj.client.registry.audit(model, actor, action, limit)
    ctx.obj.out.table("audit log", ["when", "who", "action", "resource", "reason"],
                      [(e.time.isoformat(timespec="seconds") if e.time else "", e.actor, e.action,
                        e.resource, e.reason) for e in events], records=[e.__dict__ for e in events])
