"""Whole messages out of one direction's bytes, for protocols whose header states the length.

Sans-IO: feed in-order bytes (decrypted TLS application data or a clear TCP stream), split
anywhere; get back each complete message as it closes. CAPF, TVS and SCCP are framed this way.
"""

from __future__ import annotations

from collections.abc import Callable


class MessageFramer:
    """Cuts a byte stream into messages of ``header_length`` + ``body_length(header)`` bytes.

    Buffer: at most one incomplete message (at most ``header_length + max_body`` bytes) plus the
    last feed; consumed bytes are dropped, so cost is O(n). ``check(header)`` may refuse a header
    (returns why); then, or when a body claims more than ``max_body``, ``failed`` says why and
    nothing more is read from this direction. ``pending`` is what an end of stream would cut.
    """

    def __init__(
        self,
        header_length: int,
        body_length: Callable[[bytes], int],
        max_body: int,
        check: Callable[[bytes], str | None] | None = None,
    ) -> None:
        self._header_length = header_length
        self._body_length = body_length
        self._max_body = max_body
        self._check = check
        self._buffer = bytearray()
        self.failed: str | None = None

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self.failed is not None:
            return []
        buffer = self._buffer
        buffer += data
        messages: list[bytes] = []
        start = 0
        while len(buffer) - start >= self._header_length:
            header = bytes(buffer[start : start + self._header_length])
            problem = self._check(header) if self._check else None
            body = self._body_length(header)
            if problem is None and not 0 <= body <= self._max_body:
                problem = f"message claims {body} bytes, over the {self._max_body}-byte limit"
            if problem is not None:
                self.failed = problem
                buffer.clear()
                return messages
            end = start + self._header_length + body
            if end > len(buffer):
                break
            messages.append(bytes(buffer[start:end]))
            start = end
        del buffer[:start]
        return messages
