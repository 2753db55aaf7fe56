"""Structured logging: one JSON object per line, with the request id of the call being served."""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id_var.get()
        return True


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Send every log record to stderr, as JSON (default) or as plain text for humans."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    fields = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"
    if json:
        handler.setFormatter(
            JsonFormatter(fields, rename_fields={"levelname": "level", "asctime": "time"},
                          static_fields={"service": service})
        )
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
