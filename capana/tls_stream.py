"""TLS over one TCP connection: both directions' records to the facts of its handshake, and of
what was said inside it where capana decodes the service.

Sans-IO: fed each side's in-order bytes (and the bytes after a hole) by the flow table, it keeps
one :class:`tls.TlsDirection` per side, the key hooks (:class:`SessionKeys` for TLS 1.3,
:class:`Tls12Keys` for TLS 1.0-1.2, which also reads NULL suites without any key), the
:class:`HandshakeTracker`, and for CAPF, TVS, SIP and SCCP a :class:`SessionReader` fed the
application data that could be read. The connection stays open after its handshake only while
that reader wants more and a side can still be read: at most ``sessions.MAX_BYTES`` per side.

A side whose bytes do not start with TLS (an upgrade such as STARTTLS, a capture that starts
inside the connection, bytes after a hole) is read from where TLS starts in it, as
:class:`capana.tls_start.TlsStart` finds it, each side on its own. Until a side starts, the
connection costs the two small :class:`TlsStart` objects and nothing else.
"""

from __future__ import annotations

import dataclasses

from capana import tls, tls12
from capana.budget import Budget
from capana.handshake import CLIENT, SERVER, HandshakeTracker, utc_from_epoch
from capana.model import Decryption, Handshake, Problem, ProblemCode, Sender
from capana.session_keys import SecretsLookup, SessionKeys
from capana.sessions import SessionReader, session_reader
from capana.streams import Flow
from capana.tls12_keys import Tls12Decryption, Tls12Keys
from capana.tls_start import TlsStart


class TlsStream:
    """One connection's TLS handshake, read from both sides' bytes.

    ``starts`` holds the sides whose TLS has not started yet (none: both sides open with it).
    """

    __slots__ = (
        "_budget",
        "_keys",
        "_service",
        "directions",
        "last",
        "passed",
        "reader",
        "session_keys",
        "starts",
        "tls12_keys",
        "tracker",
    )

    def __init__(
        self,
        keys: SecretsLookup | None = None,
        budget: Budget | None = None,
        starts: dict[Sender, TlsStart] | None = None,
        service: str | None = None,
    ) -> None:
        self._keys = keys  # a key log's secrets by client random
        self._budget = budget
        self._service = service
        self.starts = starts or {}
        # Sides read from a record boundary (mid-stream, after a loss): bytes passed over to it.
        self.passed: dict[Sender, int] = {}
        # Made when the first side's TLS starts.
        self.directions: dict[Sender, tls.TlsDirection] | None = None
        self.session_keys: SessionKeys | None = None
        self.tls12_keys: Tls12Keys | None = None
        self.tracker: HandshakeTracker | None = None
        self.reader: SessionReader | None = None  # what the phone says inside (some services)
        self.last: float | None = None  # the capture time of the last bytes read

    @property
    def done(self) -> bool:
        return self.tracker is not None and self.tracker.done and not self._reading

    @property
    def hopeless(self) -> bool:
        """A side gave up looking for TLS before any started, or TLS showed no handshake."""
        if self.tracker is None:
            return any(start.exhausted for start in self.starts.values())
        return self.tracker.hopeless

    @property
    def _reading(self) -> bool:
        """The session reader wants more, and a side's records can still be opened."""
        reader, directions = self.reader, self.directions
        if reader is None or reader.complete or directions is None:
            return False
        return any(direction.decryptor is not None for direction in directions.values())

    def feed(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        start = self.starts.get(sender)
        if start is not None:
            found = start.find(data)
            if found is None:
                return
            del self.starts[sender]
            if start.mode == "resync":
                self.passed[sender] = self.passed.get(sender, 0) + start.passed
            data = found
        directions, tracker = self._started()
        reader = self.reader
        if timestamp:
            self.last = timestamp
        for event in directions[sender].feed(data):
            tracker.on_event(sender, event, timestamp, frame)
            if reader is not None and isinstance(event, tls.ApplicationData):
                reader.feed(sender, event.content)

    def after_gap(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        """Bytes after a hole (or a snaplen cut) start anywhere: what was being received is cut
        short, and the side is read again from the next record boundary (its records cannot be
        decrypted any more: their sequence numbers are lost)."""
        if sender not in self.starts:
            if self.directions is not None and self.tracker is not None:
                old = self.directions[sender]
                for event in old.truncate():
                    self.tracker.on_event(sender, event, timestamp, frame)
                self.tracker.lost_data(sender)
                self.directions[sender] = tls.TlsDirection(old.on_hello, self._budget)
            if self.reader is not None:
                self.reader.cut(sender)
            self.starts[sender] = TlsStart(sender, "resync")
        elif self.starts[sender].mode == "upgrade":
            self.starts[sender] = TlsStart(sender, "resync")
        self.feed(sender, data, timestamp, frame)

    def facts(self, flow: Flow) -> tuple[Handshake, ...]:
        """The handshake (with what was said inside it), then each renegotiation read inside
        the session as a handshake of its own; nothing when no handshake message was seen."""
        tracker, directions = self.tracker, self.directions
        if tracker is None or directions is None:
            return ()
        for sender, direction in directions.items():
            if sender not in self.starts:
                for event in direction.truncate():  # the connection ended inside a message
                    tracker.on_event(sender, event, 0.0, 0)
        if not tracker.saw_handshake:
            return ()
        tls12_decryption = self.tls12_keys.decryption if self.tls12_keys else None
        decryption = self._decryption(tls12_decryption)
        cut = any(problem.code == ProblemCode.SNAPLEN for problem in flow.problems)

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
                cut=cut,
                wireshark_filter=flow.wireshark_filter,
            )

        problems = self._resync_problems() + flow.problems + self._key_problems()
        handshake = dataclasses.replace(result(tracker, problems), end=utc_from_epoch(self.last))
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

    def _started(self) -> tuple[dict[Sender, tls.TlsDirection], HandshakeTracker]:
        """Both directions, their key hooks and the tracker, made when the first side's TLS
        starts."""
        if self.directions is None or self.tracker is None:
            client = tls.TlsDirection(budget=self._budget)
            server = tls.TlsDirection(budget=self._budget)
            self.directions = {CLIENT: client, SERVER: server}
            if self._keys is not None:  # TLS 1.3 handshakes read with the key log
                self.session_keys = SessionKeys(self._keys)
                self.session_keys.attach(client, server)
            self.tls12_keys = Tls12Keys(self._keys)  # TLS <= 1.2 by the key log, NULL without
            self.tls12_keys.attach(client, server)
            self.tracker = HandshakeTracker()
            self.reader = session_reader(self._service) if self._service else None
        return self.directions, self.tracker

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
        decryption = self.tls12_keys.decryption if self.tls12_keys else None
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

    def _resync_problems(self) -> tuple[Problem, ...]:
        return tuple(
            Problem(
                ProblemCode.RESYNC,
                f"{sender}: read from a TLS record boundary, {passed} bytes before it passed over "
                "(the capture starts inside the connection, or lacks bytes before them)",
            )
            for sender, passed in sorted(self.passed.items())
        )


def _renegotiation(number: int, session: Handshake) -> Problem:
    opened = session.frames.client_hello
    where = f" opened at frame {opened}" if opened else ""
    text = f"renegotiation {number} inside the session{where}: a handshake of its own"
    return Problem(ProblemCode.RENEGOTIATED, text)
