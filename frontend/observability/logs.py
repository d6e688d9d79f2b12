"""Log formats: one JSON object per line for machines, or plain text for a person.

Every record written while a request runs carries that request's id (the
X-Request-Id it was answered with), warnings and errors included, so a log
search for one id finds all that happened to that request. The request line
itself (frontend/observability/requests.py) adds its fields under ``fields``.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from frontend.observability.context import current_request_id

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def resolve(log_format: str) -> str:
    """'json' or 'text': 'auto' is text when a person watches stdout (a terminal), JSON otherwise."""
    if log_format == "auto":
        return "text" if sys.stdout.isatty() else "json"
    return log_format


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            fields = getattr(record, "fields", None)
            record.request_id = (fields or {}).get("request_id") or current_request_id()
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime(_TIME_FORMAT, time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": _timestamp(record), "level": record.levelname.lower(), "logger": record.name,
                "message": record.getMessage(), "pid": record.process}
        request_id = getattr(record, "request_id", None)
        if request_id:
            line["request_id"] = request_id
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # ASCII only: a raw U+2028 in a request path would split the line for many log readers.
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``time [pid] LEVEL message``; a request line reads like an access log line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields and "status" in fields:
            message = (f'{fields.get("client") or "-"} "{fields["method"]} {fields["path"]}" '
                       f'{fields["status"]} {fields["latency_ms"]} ms id={fields["request_id"]}')
            for name in ("key_id", "faces"):
                if fields.get(name) is not None:
                    message += f" {name}={fields[name]}"
        else:
            message = record.getMessage()
            if getattr(record, "request_id", None):
                message += f" [request {record.request_id}]"
        text = f"{_timestamp(record)} [{record.process}] {record.levelname} {message}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def logging_config(log_format: str) -> dict:
    """A logging.config.dictConfig for the gunicorn master and its workers."""
    formatter = JsonFormatter if resolve(log_format) == "json" else TextFormatter
    handler = {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stdout",
               "filters": ["request_id"]}
    quiet = {"handlers": ["stdout"], "level": "INFO", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"line": {"()": formatter}},
        "handlers": {"stdout": handler},
        "root": {"handlers": ["stdout"], "level": "WARNING"},
        "loggers": {"gunicorn.error": quiet, "face_api": quiet,
                    # The request lines of frontend/observability/requests.py replace the access log.
                    "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False}},
    }
