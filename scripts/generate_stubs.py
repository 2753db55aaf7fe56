"""Generate the Python gRPC stubs (with .pyi type stubs) from protos/ into gen/python/.

The output mirrors the proto tree, so the import path equals the proto path:
``protos/beamops/registry/v1/registry_service.proto`` becomes
``from beamops.registry.v1 import registry_service_pb2_grpc``. No import rewriting.

Run by ``make protos`` and by the package build hook (``hatch_build.py``), so installing the
project always generates fresh stubs. Usage: ``python scripts/generate_stubs.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PYTHON_OUT = ROOT / "gen" / "python"


def include_dirs() -> list[Path]:
    """Where protoc finds imports: our protos, protobuf's well-known types, googleapis (google.rpc)."""
    grpc_tools_protos = Path(str(resources.files("grpc_tools") / "_proto"))
    import google.rpc  # from googleapis-common-protos

    googleapis = Path(google.rpc.__path__[0]).parent.parent
    return [PROTOS, grpc_tools_protos, googleapis]


def proto_files() -> list[Path]:
    return sorted(PROTOS.rglob("*.proto"))


def generate_python(out: Path = PYTHON_OUT) -> list[Path]:
    from grpc_tools import protoc

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = proto_files()
    args = ["grpc_tools.protoc", *(f"-I{d}" for d in include_dirs())]
    args += [f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"]
    args += [str(f.relative_to(PROTOS)) for f in files]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    # py.typed marks the generated tree as typed for mypy / pyright.
    (out / "beamops").mkdir(exist_ok=True)
    (out / "beamops" / "py.typed").write_text("")
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PYTHON_OUT)
    args = parser.parse_args(argv)
    files = generate_python(args.out)
    print(f"generated Python stubs for {len(files)} proto files into {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
