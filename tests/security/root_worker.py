"""Reads ROOT files the way the data service does (rootio: inspect, then every numeric branch in
full), in a process whose memory and CPU time are capped with ``resource.setrlimit``; prints one
JSON line per file: {"name", "stage", "outcome", "message", "digest"} (digest: sha256 of every
value read, in branch order, when the whole file was read).

    python -m tests.security.root_worker <memory MiB> <cpu seconds> <file>...

A file that needed more memory ends as MemoryError, one that spins is killed by SIGXCPU (the
caller sees the worker die after the last file it reported).
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    memory_mib, cpu_s, files = int(argv[0]), int(argv[1]), argv[2:]
    resource.setrlimit(resource.RLIMIT_AS, (memory_mib << 20, memory_mib << 20))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))

    import awkward as ak

    from beamops.data import rootio
    from beamops.data.sources import SourceFileRef, SourceKind
    from beamops.runtime.errors import BeamopsError

    for path in files:
        ref = SourceFileRef(Path(path).name, SourceKind.LOCAL, path)
        stage, digest = "inspect", ""
        try:
            info = rootio.inspect_tree(ref, "events")
            stage = "read"
            numeric = [b.name for b in info.branches if b.dtype is not None]
            rows, values = 0, hashlib.sha256()
            for _start, arrays in rootio.iterate(ref, "events", numeric, 0, info.num_entries, 100_000):
                rows += len(next(iter(arrays.values()))) if arrays else 0
                for name in numeric:
                    values.update(ak.to_numpy(ak.flatten(arrays[name], axis=None)).tobytes())
            outcome, message, digest = "ok", f"{rows} rows", values.hexdigest()
        except BeamopsError as exc:
            outcome, message = type(exc).__name__, exc.message
        except MemoryError:
            outcome, message = "MemoryError", ""
        except BaseException as exc:  # noqa: BLE001 - reported, the test fails on it
            outcome, message = f"crash:{type(exc).__name__}", str(exc)[:300]
        print(json.dumps({"name": Path(path).name, "stage": stage, "outcome": outcome,
                          "message": message, "digest": digest}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
