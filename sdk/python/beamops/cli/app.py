"""beamops: the physicist's front door to the platform.

Exit codes scripts can rely on: 0 success; 1 other error; 2 usage error; 3 not found;
4 not allowed (no, unknown or insufficient token); 5 invalid input; 6 conflict (exists already,
or the state forbids it); 7 unavailable (service down: retry later); 8 data loss.
"""

from __future__ import annotations

import grpc
import typer

from beamops import errors

from beamops.runtime.errors import BeamopsError as ServerSideError

from .output import Output
from .root import State, app

__all__ = ["EXIT_CODES", "SERVER_EXIT_CODES", "State", "app", "exit_code", "main"]

EXIT_CODES = {
    errors.NotFoundError: 3,
    errors.PermissionDeniedError: 4,
    errors.AuthenticationError: 4,
    errors.InvalidArgumentError: 5,
    errors.AlreadyExistsError: 6,
    errors.ConflictError: 6,
    errors.UnavailableError: 7,
    errors.DeadlineExceededError: 7,
    errors.DataLossError: 8,
}

SERVER_EXIT_CODES = {"NOT_FOUND": 3, "INVALID_ARGUMENT": 5, "ALREADY_EXISTS": 6}


def main() -> None:
    """Run the CLI, turning beamops errors into a message and an exit code."""
    from . import commands  # noqa: F401  (registers the sub-commands on .root's app)

    try:
        code = app(standalone_mode=False)  # click returns the code of typer.Exit here
    except errors.BeamopsError as error:
        Output().error(_describe(error))
        raise SystemExit(exit_code(error)) from None
    except ServerSideError as error:  # from commands that work on server files (beamops token)
        Output().error(error.message)
        raise SystemExit(SERVER_EXIT_CODES.get(error.reason, 1)) from None
    except grpc.RpcError as error:
        wrapped = errors.from_rpc_error(error)
        Output().error(_describe(wrapped))
        raise SystemExit(exit_code(wrapped)) from None
    except (typer.Abort, KeyboardInterrupt):
        raise SystemExit(130) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except Exception as error:  # usage errors (typer's own click): shown without a traceback
        if hasattr(error, "show") and hasattr(error, "exit_code"):
            error.show()
            raise SystemExit(error.exit_code) from None
        raise
    raise SystemExit(code if isinstance(code, int) else 0)


def exit_code(error: errors.BeamopsError) -> int:
    return next((code for cls, code in EXIT_CODES.items() if isinstance(error, cls)), 1)


def _describe(error: errors.BeamopsError) -> str:
    suffix = f" (request id {error.request_id})" if error.request_id else ""
    return f"{error.message}{suffix}"
