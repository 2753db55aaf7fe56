"""One module per group of commands; importing them registers them on the app."""

from . import datasets, inference, registry, status, tokens, training  # noqa: F401
