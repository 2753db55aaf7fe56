"""One module per group of commands; importing them registers them on the app."""

from . import datasets, registry, status  # noqa: F401
