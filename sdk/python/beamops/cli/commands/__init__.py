"""One module per group of commands; importing them registers them on the app."""

from . import status  # noqa: F401
