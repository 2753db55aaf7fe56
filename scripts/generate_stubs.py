"""Generate the gRPC stubs from protos/: Python by default; Go, Java and C++ too with --all.

Python (with .pyi type stubs) goes into gen/python/. The output mirrors the proto tree, so the
import path equals the proto path: ``protos/beamops/registry/v1/registry_service.proto`` becomes
``from beamops.registry.v1 import registry_service_pb2_grpc``. No import rewriting.

The client languages (``--all``, or ``--lang go java cpp``; ``make stubs``), none committed:
- Go: protoc-gen-go and protoc-gen-go-grpc, at the versions pinned by the ``tool`` lines of
  clients/go/go.mod, are built into clients/go/bin/; the code goes into clients/go/gen/.
- Java: ``mvn generate-sources`` in clients/java/ (protobuf-maven-plugin, protoc and
  protoc-gen-grpc-java from Maven Central) into clients/java/target/generated-sources/.
- C++: CMake configures clients/cpp/build/ and runs its ``beamops_cpp_stubs`` target (Debian's
  protoc and grpc_cpp_plugin, matching the libprotobuf the program links) into
  clients/cpp/build/gen/. Building the clients regenerates whatever is stale by itself.

Run by ``make protos`` and by the package build hook (``hatch_build.py``), so installing the
project always generates fresh Python stubs.
Usage: ``python scripts/generate_stubs.py [--out DIR] [--all | --lang LANG ...]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PYTHON_OUT = ROOT / "gen" / "python"
CLIENTS = ROOT / "clients"
GO_MODULE = "github.com/beamops/beamops/clients/go"
LANGUAGES = ("python", "go", "java", "cpp")


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


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    tool = shutil.which(command[0])
    if tool is None:
        raise SystemExit(f"{command[0]} is not installed; see clients/README.md")
    done = subprocess.run([tool, *command[1:]], cwd=cwd, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd.relative_to(ROOT)} "
                         f"(exit {done.returncode}); see the messages above")


def generate_go() -> Path:
    """Go code into clients/go/gen/, with the plugin versions pinned in clients/go/go.mod."""
    from grpc_tools import protoc

    module = CLIENTS / "go"
    bin_dir = module / "bin"
    _run(["go", "install", "tool"], cwd=module, env=dict(os.environ, GOBIN=str(bin_dir)))
    out = module / "gen"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    args = ["grpc_tools.protoc", *(f"-I{d}" for d in include_dirs())]
    args += [f"--plugin=protoc-gen-go={bin_dir / 'protoc-gen-go'}",
             f"--plugin=protoc-gen-go-grpc={bin_dir / 'protoc-gen-go-grpc'}",
             f"--go_out={module}", f"--go_opt=module={GO_MODULE}",
             f"--go-grpc_out={module}", f"--go-grpc_opt=module={GO_MODULE}"]
    args += [str(f.relative_to(PROTOS)) for f in proto_files()]
    if protoc.main(args) != 0:
        raise SystemExit("protoc (Go) failed; see the messages above")
    return out


def generate_java() -> Path:
    """Java code into clients/java/target/generated-sources/ through Maven."""
    maven_args = os.environ.get("BEAMOPS_MAVEN_ARGS", "-q -B").split()
    _run(["mvn", *maven_args, "generate-sources"], cwd=CLIENTS / "java")
    return CLIENTS / "java" / "target" / "generated-sources"


def generate_cpp() -> Path:
    """C++ code into clients/cpp/build/gen/ through CMake (Debian's protoc and grpc_cpp_plugin)."""
    source, build = CLIENTS / "cpp", CLIENTS / "cpp" / "build"
    googleapis = include_dirs()[2]
    _run(["cmake", "-S", str(source), "-B", str(build), f"-DGOOGLEAPIS_PROTO_DIR={googleapis}"],
         cwd=ROOT)
    _run(["cmake", "--build", str(build), "--target", "beamops_cpp_stubs"], cwd=ROOT)
    return build / "gen"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PYTHON_OUT, help="Python output folder")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every language: " + ", ".join(LANGUAGES))
    which.add_argument("--lang", nargs="+", choices=LANGUAGES, help="only these languages")
    args = parser.parse_args(argv)
    languages = LANGUAGES if args.all else tuple(args.lang or ("python",))
    if "python" in languages:
        files = generate_python(args.out)
        print(f"generated Python stubs for {len(files)} proto files into {args.out}", file=sys.stderr)
    generators = {"go": generate_go, "java": generate_java, "cpp": generate_cpp}
    for language in languages:
        if language in generators:
            out = generators[language]()
            print(f"generated {language} stubs into {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
