"""Exit 0 if the gRPC server on a port reports SERVING: ``python -m beamops.runtime.healthcheck 50051``.

Used by container health checks (compose.yaml) and scripts.
"""

from __future__ import annotations

import sys

from beamops.health import health_status


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        raise SystemExit("usage: python -m beamops.runtime.healthcheck PORT [HOST]")
    host = args[1] if len(args) == 2 else "127.0.0.1"
    state = health_status(f"{host}:{int(args[0])}")
    print(state)
    sys.exit(0 if state == "SERVING" else 1)


if __name__ == "__main__":
    main()
