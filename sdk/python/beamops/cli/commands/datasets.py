"""``beamops datasets``: ROOT datasets from the shell."""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator, List, Optional

import typer

from ..root import app

datasets = typer.Typer(help="ROOT datasets: register, list, show, split.", no_args_is_help=True)
app.add_typer(datasets, name="datasets")

COLUMNS = ["dataset", "version", "entries", "content hash", "created by", "description"]


def _row(v):
    return (v.dataset, v.version_id, v.entries, v.content_hash[:16], v.created_by, v.description)


def _record(v) -> dict:
    return {k: val for k, val in v.__dict__.items() if k != "raw"}


@datasets.command("add")
def add(ctx: typer.Context, name: str,
        sources: List[str] = typer.Argument(..., metavar="SRC", help=(
            "Files, globs (quoted, so the service expands them: 'mc/*.root') or directories "
            "('mc/') under the data roots, root:// or https:// URLs.")),
        tree: str = typer.Option(..., help="TTree name, e.g. events."),
        branch: List[str] = typer.Option([], help="Branch to keep (repeatable; default all)."),
        cut: str = typer.Option("", help='Selection, e.g. "NMuon >= 2".'),
        common_branches: bool = typer.Option(False, "--common-branches", help=(
            "Files whose branches differ: keep the branches all of them share.")),
        description: str = typer.Option("")) -> None:
    """Register a dataset version (the same content gives the same version id), with a
    progress bar while the service hashes the files."""
    data = ctx.obj.client.data
    register = functools.partial(data.register, name, sources, tree, branch, cut,
                                 description=description, common_branches=common_branches)
    if ctx.obj.out.json_mode:
        version = register(progress=lambda *_: None)  # streams too: no deadline for many files
    else:
        with _hashing_bar(ctx.obj.out.errors, name) as update:
            version = register(progress=update)
    ctx.obj.out.table("registered", COLUMNS, [_row(version)], records=[_record(version)])


@contextlib.contextmanager
def _hashing_bar(console, name: str) -> Iterator[Callable[[int, int, int], None]]:
    """A progress bar (the style of ``train submit --watch``) on stderr; yields its updater."""
    from rich.filesize import decimal
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.fields[files]}"), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        task = bar.add_task(f"hashing {name}", total=None, files="")

        def update(done: int, total: int, hashed: int) -> None:
            bar.update(task, completed=done, total=total,
                       files=f"{done}/{total} files, {decimal(hashed)}")

        yield update


@datasets.command("list")
def list_(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="A dataset: list its versions.")) -> None:
    """List datasets, or the versions of one dataset."""
    data = ctx.obj.client.data
    if name:
        versions = data.list_versions(name)
        ctx.obj.out.table(f"versions of {name}", COLUMNS, [_row(v) for v in versions],
                          records=[_record(v) for v in versions])
    else:
        found = data.list_datasets()
        ctx.obj.out.table("datasets", ["dataset", "versions", "latest version", "created by"],
                          [(d.name, d.version_count, d.latest_version_id, d.created_by) for d in found])


@datasets.command("show")
def show(ctx: typer.Context, name: str, version: str) -> None:
    """One dataset version: files, selection, schema, splits."""
    v = ctx.obj.client.data.get(name, version)
    if ctx.obj.out.json_mode:
        ctx.obj.out.json(v.raw)
        return
    ctx.obj.out.record(f"{v.dataset} {v.version_id}", {
        "entries": v.entries, "content hash": v.content_hash, "created by": v.created_by,
        "files": [f.get("url", "") for f in v.raw.get("files", [])],
        "branches": [b.get("name") for b in v.raw.get("schema", {}).get("branches", [])],
        "splits": {s.get("name"): s.get("entry_count") for s in v.raw.get("splits", [])},
    })


@datasets.command("split")
def split(ctx: typer.Context, name: str, version: str,
          train: float = typer.Option(0.7), validation: float = typer.Option(0.15),
          test: float = typer.Option(0.15),
          seed: int = typer.Option(..., help="The same seed gives the same split.")) -> None:
    """Derive a train/validation/test split of a version."""
    data = ctx.obj.client.data
    derived = data.split(data.get(name, version), train, validation, test, seed)
    ctx.obj.out.table("split", COLUMNS, [_row(derived)], records=[_record(derived)])
