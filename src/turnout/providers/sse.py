"""An incremental Server-Sent Events decoder (the ``text/event-stream`` format).

Feed it the bytes as they arrive, in chunks of any size; it returns the ``data``
payload of every event completed so far. Comment lines (``: keep-alive``, as
OpenRouter sends) and the ``event``/``id``/``retry`` fields are skipped;
multi-line data is joined with newlines, as the SSE specification says.
"""

from __future__ import annotations

MAX_PENDING_BYTES = 16 * 1024 * 1024


class SSEError(ValueError):
    """The byte stream is not valid SSE (bad UTF-8, or an event that never ends)."""


class SSEDecoder:
    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        """The data payloads of the events that ``chunk`` completes."""
        if b"\n" not in chunk:
            self._buffer += chunk
            if len(self._buffer) > MAX_PENDING_BYTES:
                raise SSEError(f"an SSE line longer than {MAX_PENDING_BYTES} bytes")
            return []
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        events: list[str] = []
        for line in lines:
            self._line(line, events)
        return events

    def close(self) -> list[str]:
        """At end of stream: the event left without its closing blank line, if any."""
        events: list[str] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[str]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data = []
            return
        if line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            try:
                self._data.append(value.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise SSEError(f"an SSE data line that is not UTF-8 ({exc.reason})") from None
        # comments (":...") and other fields (event, id, retry) carry nothing we use
