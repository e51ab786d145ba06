"""What the gateway says about a request it could not even read: never what was sent.

aiohttp answers a request whose head it cannot parse (a header line past 8,190 bytes,
a malformed line) before any handler runs, with a ``text/plain`` 400 that quotes the
start of the offending line, and logs the parser's exception with its traceback; when
that line is ``Authorization: Bearer tk-...``, both hold the key. Here such a request
is answered with a 400 in OpenAI's error shape that names the kind of fault only, and
logged in one line without the exception's text (:class:`QuietParserErrors`, on the
logger given to aiohttp's protocol).
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger("turnout.gateway.http")


class QuietParserErrors(logging.Filter):
    """A record of a request aiohttp could not parse loses its exception (whose text
    quotes what was sent) and keeps one line naming the fault's kind."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            said = record.getMessage()  # aiohttp's own words, before the exception's
            record.msg, record.args = "%s: %s (%s)", (said, type(exc).__name__, _what(exc))
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:  # a client's fault, not the gateway's
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def protocol_logger() -> logging.Logger:
    """The logger aiohttp's protocol reports errors to, quiet about what was sent."""
    if not any(isinstance(f, QuietParserErrors) for f in log.filters):
        log.addFilter(QuietParserErrors())
    return log


class _Handler(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        super().handle_error(request, status, exc, "")  # logged (quietly), connection closed
        body = {"error": {"message": f"the request could not be read: {_what(exc)}",
                          "type": "invalid_request_error", "param": None,
                          "code": "bad_http_request"}}  # fmt: skip
        response = web.Response(
            status=status, text=json.dumps(body), content_type="application/json"
        )
        response.force_close()
        return response


class QuietServer(web.Server):
    """aiohttp's low-level server, its connections answering unreadable requests
    through :class:`_Handler`."""

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


def quieten(server: web.Server) -> None:
    """Make an app runner's server (``runner.server``, once set up) a :class:`QuietServer`."""
    server.__class__ = QuietServer


def _what(exc: HttpProcessingError) -> str:
    kinds = {
        "LineTooLong": "a line or header too long",
        "InvalidHeader": "a malformed header",
        "BadStatusLine": "a malformed request line",
        "BadHttpMethod": "an unknown method",
        "InvalidURLError": "a malformed URL",
    }
    return kinds.get(type(exc).__name__, "a malformed request head")
