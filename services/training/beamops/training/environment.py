"""What a job ran with: package versions (importlib.metadata) and the code reference.

The code reference is the git commit of the repository holding the model's code when there is
one (read from the ``.git`` folder's files: no git command, no shell), else the package name and
version of the distribution that installs it.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import platform
from pathlib import Path

PACKAGES = ("beamops", "numpy", "scikit-learn", "scipy", "skl2onnx", "onnx", "onnxruntime", "pyarrow",
            "dask", "distributed", "xgboost", "xgboost-cpu", "lightgbm", "onnxmltools", "torch")


def software_environment(extra_distributions: tuple[str, ...] = ()) -> dict:
    packages = {}
    for name in (*PACKAGES, *extra_distributions):
        try:
            packages[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return dict(python_version=platform.python_version(), platform=platform.platform(terse=True),
                packages=packages)


def code_reference(entry_point: str) -> tuple[dict, tuple[str, ...]]:
    """(code ref as a dict {"git": {...}} or {"package": {...}}, distributions it belongs to)."""
    module_name = entry_point.partition(":")[0] if entry_point else "beamops.training.trainers"
    display = entry_point or "builtin"
    origin = _module_file(module_name)
    dists = tuple(md.packages_distributions().get(module_name.split(".")[0], ()))
    if origin is not None:
        git = _git_commit(origin)
        if git is not None:
            root, commit, remote = git
            try:
                rel = str(origin.relative_to(root))
            except ValueError:
                rel = ""
            return {"git": dict(repository=remote, commit=commit, path=rel)}, dists
    if dists:
        name = dists[0]
        return {"package": dict(name=name, version=md.version(name), entry_point=display)}, dists
    return {"package": dict(name=module_name, version="", entry_point=display)}, dists


def _module_file(module_name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    return Path(spec.origin).resolve()


def _git_commit(path: Path) -> tuple[Path, str, str] | None:
    """(repository root, commit of HEAD, remote url or "") for the repository holding ``path``."""
    for folder in path.parents:
        git = folder / ".git"
        if git.is_dir():
            return _read_head(git, folder)
        if folder == folder.parent:
            break
    return None


def _read_head(git: Path, root: Path) -> tuple[Path, str, str] | None:
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git / ref
            if ref_file.is_file():
                commit = ref_file.read_text().strip()
            else:
                commit = ""
                packed = git / "packed-refs"
                if packed.is_file():
                    for line in packed.read_text().splitlines():
                        parts = line.split()
                        if len(parts) == 2 and parts[1] == ref:
                            commit = parts[0]
            if not commit:
                return None  # a repository without commits yet
        else:
            commit = head
        remote = ""
        config = git / "config"
        if config.is_file():
            section = ""
            for line in config.read_text().splitlines():
                line = line.strip()
                if line.startswith("["):
                    section = line
                elif section == '[remote "origin"]' and line.startswith("url"):
                    remote = line.partition("=")[2].strip()
        return root, commit, remote
    except OSError:
        return None
