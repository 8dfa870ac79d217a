"""Structured JSON logs with the trace id, and personal data masked in every line."""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from crm_runtime.pii import mask_text


class TraceContextFilter(logging.Filter):
    """Adds the current OpenTelemetry trace and span ids so a log line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else None
        record.span_id = f"{ctx.span_id:016x}" if ctx.is_valid else None
        return True


class PersonalDataFilter(logging.Filter):
    """Masks phone numbers, e-mail addresses and ID numbers in the message and its extras.

    It runs on every record of every service, so a careless `log.info(f"... {phone}")`
    still never writes a phone number to disk.
    """

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            # Ids are generated, never personal data: leave trace ids, case ids, ... intact.
            if key not in self._STANDARD and isinstance(value, str) and not key.endswith("_id"):
                setattr(record, key, mask_text(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """One JSON object per line on stdout, for every logger of the process."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(TraceContextFilter())
    handler.addFilter(PersonalDataFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # uvicorn installs its own handlers; route them through ours.
    for name in ("uvicorn", "uvicorn.error", "faststream"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
