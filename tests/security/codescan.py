"""An ``ast`` scan of our own Python code for calls that load untrusted data as code, start a
shell, or extract archives unsafely (not grep: aliases such as ``import pickle as p`` or
``from yaml import load`` are resolved, and arguments such as ``weights_only=True`` read).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the repository
    line: int
    call: str  # the resolved dotted name, e.g. "pickle.loads"
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.call} ({self.why})"


def python_files(*folders: str) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        out += [p for p in (REPO / folder).rglob("*.py")
                if not any(part in {".venv", "__pycache__", "node_modules"} for part in p.parts)]
    return sorted(out)


class _Resolver(ast.NodeVisitor):
    """Local name -> dotted origin, from the module's imports (any scope)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.names[alias.asname] = alias.name
            else:
                self.names.setdefault(alias.name.split(".")[0], alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            for alias in node.names:
                self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"


def dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        if parts:  # e.g. tarfile.open(...).extractall(): keep the method name
            return "?." + ".".join(reversed(parts))
        return None
    head = names.get(node.id, node.id)
    return ".".join([head, *reversed(parts)])


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_const(node: ast.expr | None, *values) -> bool:
    return isinstance(node, ast.Constant) and node.value in values


def calls(path: Path) -> Iterator[tuple[ast.Call, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    resolver = _Resolver()
    resolver.visit(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = dotted(node.func, resolver.names)
            if name:
                yield node, name


Rule = Callable[[ast.Call, str], str | None]


def scan(files: Iterable[Path], rule: Rule) -> list[Finding]:
    found = []
    for path in files:
        for call, name in calls(path):
            why = rule(call, name)
            if why:
                shown = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
                found.append(Finding(shown, call.lineno, name, why))
    return found


# --------------------------------------------------------------------------------------- rules

_UNPICKLERS = {
    "pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads", "cPickle.load",
    "cPickle.loads", "cloudpickle.load", "cloudpickle.loads", "dill.load", "dill.loads", "joblib.load",
    "marshal.load", "marshal.loads", "shelve.open", "pandas.read_pickle", "pd.read_pickle",
    "torch.serialization.load", "numpy.lib.format.read_array", "yaml.unsafe_load", "yaml.full_load",
    "yaml.unsafe_load_all", "yaml.full_load_all", "jsonpickle.decode", "builtins.eval", "builtins.exec",
    "eval", "exec",
}
_SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def unsafe_loading(call: ast.Call, name: str) -> str | None:
    """Deserialisation that can run code: pickle & co., unsafe numpy/torch/yaml loads, eval/exec."""
    if name in _UNPICKLERS:
        return "loads code-bearing data" if name not in ("eval", "exec") else "evaluates a string as code"
    if name in ("numpy.load", "np.load") and not is_const(keyword(call, "allow_pickle"), False, None):
        if keyword(call, "allow_pickle") is not None:
            return "numpy.load with allow_pickle"
    if name == "torch.load" and not is_const(keyword(call, "weights_only"), True):
        return "torch.load without weights_only=True"
    if name in ("yaml.load", "yaml.load_all"):
        loader = keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        loader_name = dotted(loader, {}) if loader is not None else None
        if not loader_name or loader_name.split(".")[-1] not in _SAFE_YAML_LOADERS:
            return "yaml.load without SafeLoader"
    return None


_SHELLS = {"os.system", "os.popen", "os.spawnl", "os.spawnlp", "os.spawnv", "os.spawnvp", "pty.spawn",
           "asyncio.create_subprocess_shell", "commands.getoutput", "subprocess.getoutput",
           "subprocess.getstatusoutput"}
_SUBPROCESS = {"subprocess.Popen", "subprocess.run", "subprocess.call", "subprocess.check_call",
               "subprocess.check_output", "asyncio.create_subprocess_exec"}


def shell_use(call: ast.Call, name: str) -> str | None:
    """Anything that hands a command line to a shell."""
    if name in _SHELLS:
        return "runs a command through a shell"
    if name in _SUBPROCESS:
        shell = keyword(call, "shell")
        if shell is not None and not is_const(shell, False, None):
            return "shell=True (or not provably False)"
        if call.args and isinstance(call.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
            return "a command line given as one string"
    return None


def unsafe_extraction(call: ast.Call, name: str) -> str | None:
    """Archive extraction must use tarfile's data filter (no '..', absolute names, links out)."""
    method = name.rsplit(".", 1)[-1]
    if method in ("extractall", "extract", "unpack_archive"):
        flt = keyword(call, "filter")
        if not is_const(flt, "data"):
            return f"{method} without filter='data'"
    return None
