"""TLS over one TCP connection: both directions' records to the facts of its handshake, and of
what was said inside it where capana decodes the service.

Sans-IO: fed each side's in-order bytes (and the bytes after a hole) by the flow table, it keeps
one :class:`tls.TlsDirection` per side, the key hooks (:class:`SessionKeys` for TLS 1.3,
:class:`Tls12Keys` for TLS 1.0-1.2, which also reads NULL suites without any key), the
:class:`HandshakeTracker`, and for CAPF, TVS, SIP and SCCP a :class:`SessionReader` fed the
application data that could be read. The connection stays open after its handshake only while
that reader wants more and a side can still be read: at most ``sessions.MAX_BYTES`` per side.
"""

from __future__ import annotations

import dataclasses

from capana import tls, tls12
from capana.handshake import CLIENT, SERVER, HandshakeTracker, utc_from_epoch
from capana.model import Decryption, Handshake, Problem, ProblemCode, Sender
from capana.session_keys import SecretsLookup, SessionKeys
from capana.sessions import SessionReader, session_reader
from capana.streams import Flow
from capana.tls12_keys import Tls12Decryption, Tls12Keys


def opens_tls(sender: Sender, first_bytes: bytes, known_port: bool) -> bool:
    """Do a connection's first bytes from ``sender`` start TLS?

    A ClientHello from the client anywhere; on a TLS port any handshake record, since a capture
    may start mid-handshake.
    """
    if sender == CLIENT and tls.looks_like_client_hello(first_bytes):
        return True
    return known_port and tls.looks_like_tls_record(first_bytes) and first_bytes[0] == tls.HANDSHAKE


class TlsStream:
    """One connection's TLS handshake, read from both sides' bytes."""

    __slots__ = ("directions", "last", "reader", "session_keys", "tls12_keys", "tracker")

    def __init__(self, keys: SecretsLookup | None = None, service: str | None = None) -> None:
        self.directions = {CLIENT: tls.TlsDirection(), SERVER: tls.TlsDirection()}
        client, server = self.directions[CLIENT], self.directions[SERVER]
        self.session_keys: SessionKeys | None = None
        if keys is not None:  # a key log's secrets by client random, to read TLS 1.3
            self.session_keys = SessionKeys(keys)
            self.session_keys.attach(client, server)
        self.tls12_keys = Tls12Keys(keys)  # TLS <= 1.2 with the key log, NULL suites without
        self.tls12_keys.attach(client, server)
        self.tracker = HandshakeTracker()
        # What the phone says inside, for the services capana decodes (None elsewhere).
        self.reader: SessionReader | None = session_reader(service) if service else None
        self.last: float | None = None  # the capture time of the last bytes read

    @property
    def done(self) -> bool:
        return self.tracker.done and not self._reading

    @property
    def hopeless(self) -> bool:
        return self.tracker.hopeless

    @property
    def _reading(self) -> bool:
        """The session reader wants more, and a side's records can still be opened."""
        reader = self.reader
        if reader is None or reader.complete:
            return False
        return any(direction.decryptor is not None for direction in self.directions.values())

    def feed(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        reader = self.reader
        if timestamp:
            self.last = timestamp
        for event in self.directions[sender].feed(data):
            self.tracker.on_event(sender, event, timestamp, frame)
            if reader is not None and isinstance(event, tls.ApplicationData):
                reader.feed(sender, event.content)

    def after_gap(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        """Bytes after a hole start mid-record; only a record boundary can resync (and records
        after a hole cannot be decrypted: their sequence numbers are lost)."""
        self.tracker.lost_data(sender)
        if self.reader is not None:
            self.reader.cut(sender)
        self.directions[sender] = direction = tls.TlsDirection()
        if tls.looks_like_tls_record(data):
            self.feed(sender, data, timestamp, frame)
        else:
            direction.failed = True  # what follows cannot be framed either

    def facts(self, flow: Flow) -> tuple[Handshake, ...]:
        """The handshake (with what was said inside it), then each renegotiation read inside
        the session as a handshake of its own; nothing when no handshake message was seen."""
        tracker = self.tracker
        if not tracker.saw_handshake:
            return ()
        tls12_decryption = self.tls12_keys.decryption
        decryption = self._decryption(tls12_decryption)

        def result(folded: HandshakeTracker, problems: tuple[Problem, ...]) -> Handshake:
            return folded.result(
                capture=flow.capture,
                client=flow.client,
                server=flow.server,
                server_port=flow.server_port,
                service=flow.service,
                gaps=flow.gaps,
                problems=problems,
                decryption=decryption,
                wireshark_filter=flow.wireshark_filter,
            )

        handshake = dataclasses.replace(
            result(tracker, flow.problems + self._key_problems()), end=utc_from_epoch(self.last)
        )
        if tls12_decryption is not None:
            handshake = dataclasses.replace(
                handshake,
                extended_master_secret=tls12_decryption.extended_master_secret,
                encrypt_then_mac=tls12_decryption.encrypt_then_mac,
            )
        if self.reader is not None:
            handshake = self.reader.apply(handshake)
        renegotiated = tuple(
            dataclasses.replace(
                result(inner, (_renegotiation(number, handshake),)),
                extended_master_secret=handshake.extended_master_secret,
                encrypt_then_mac=handshake.encrypt_then_mac,
            )
            for number, inner in enumerate(tracker.renegotiations, 1)
            if inner.saw_handshake
        )
        return (handshake, *renegotiated)

    def _decryption(self, tls12_decryption: Tls12Decryption | None) -> Decryption | None:
        """How the session was read: TLS 1.3 by the key log; TLS <= 1.2 by the key log, or a
        NULL suite in clear; "not_needed": in the key log, a suite capana does not decrypt."""
        if self.session_keys is not None and self.session_keys.status is not None:
            return self.session_keys.status
        if tls12_decryption is None:
            return None
        status = tls12_decryption.status
        if status in ("decrypted", "plaintext", "failed"):
            return status
        if status == "unsupported" and not tls12.is_null_suite(tls12_decryption.cipher_suite):
            return "not_needed"  # only the key log's session makes such a suite "unsupported"
        return None

    def _key_problems(self) -> tuple[Problem, ...]:
        found = list(self.session_keys.problems) if self.session_keys else []
        decryption = self.tls12_keys.decryption
        if decryption is not None:
            found += decryption.problems
        problems = [Problem(ProblemCode.KEYLOG, text) for text in found]
        if decryption is not None and decryption.truncated:
            text = (
                f"decryption stopped after {tls12.MAX_APPLICATION_DATA} bytes of a side's "
                "application data"
            )
            problems.append(Problem(ProblemCode.LIMIT, text))
        return tuple(problems)


def _renegotiation(number: int, session: Handshake) -> Problem:
    opened = session.frames.client_hello
    where = f" opened at frame {opened}" if opened else ""
    text = f"renegotiation {number} inside the session{where}: a handshake of its own"
    return Problem(ProblemCode.RENEGOTIATED, text)
