"""TLS over one TCP connection: both directions' records to the facts of its handshake.

Sans-IO: fed each side's in-order bytes (and the bytes after a hole) by the flow table, it keeps
one :class:`tls.TlsDirection` per side, the key log hooks, and the :class:`HandshakeTracker`.
A side whose bytes do not start with TLS (an upgrade such as STARTTLS, a capture that starts
inside the connection, bytes after a hole) is read from where TLS starts in it, as
:class:`capana.tls_start.TlsStart` finds it, each side on its own. Until a side starts, the
connection costs the two small :class:`TlsStart` objects and nothing else.
"""

from __future__ import annotations

from capana import tls
from capana.budget import Budget
from capana.handshake import CLIENT, SERVER, HandshakeTracker
from capana.model import Handshake, Problem, ProblemCode, Sender
from capana.session_keys import SecretsLookup, SessionKeys
from capana.streams import Flow
from capana.tls_start import TlsStart


class TlsStream:
    """One connection's TLS handshake, read from both sides' bytes.

    ``starts`` holds the sides whose TLS has not started yet (none: both sides open with it).
    """

    __slots__ = ("_budget", "_keys", "directions", "passed", "session_keys", "starts", "tracker")

    def __init__(
        self,
        keys: SecretsLookup | None = None,
        budget: Budget | None = None,
        starts: dict[Sender, TlsStart] | None = None,
    ) -> None:
        self._keys = keys  # a key log's secrets by client random, to read TLS 1.3
        self._budget = budget
        self.starts = starts or {}
        # Sides read from a record boundary (mid-stream, after a loss): bytes passed over to it.
        self.passed: dict[Sender, int] = {}
        self.directions: dict[Sender, tls.TlsDirection] | None = None  # from the first start
        self.session_keys: SessionKeys | None = None
        self.tracker: HandshakeTracker | None = None

    @property
    def done(self) -> bool:
        return self.tracker is not None and self.tracker.done

    @property
    def hopeless(self) -> bool:
        """A side gave up looking for TLS before any started, or TLS showed no handshake."""
        if self.tracker is None:
            return any(start.exhausted for start in self.starts.values())
        return self.tracker.hopeless

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
        for event in directions[sender].feed(data):
            tracker.on_event(sender, event, timestamp, frame)

    def after_gap(self, sender: Sender, data: bytes, timestamp: float, frame: int) -> None:
        """Bytes after a hole (or a snaplen cut) start anywhere: what was being received is cut
        short, and the side is read again from the next record boundary."""
        if sender not in self.starts:
            if self.directions is not None and self.tracker is not None:
                old = self.directions[sender]
                for event in old.truncate():
                    self.tracker.on_event(sender, event, timestamp, frame)
                self.tracker.lost_data(sender)
                self.directions[sender] = tls.TlsDirection(old.on_hello, self._budget)
            self.starts[sender] = TlsStart(sender, "resync")
        elif self.starts[sender].mode == "upgrade":
            self.starts[sender] = TlsStart(sender, "resync")
        self.feed(sender, data, timestamp, frame)

    def facts(self, flow: Flow) -> tuple[Handshake, ...]:
        """The handshake, or nothing when no handshake message was ever seen."""
        tracker, directions = self.tracker, self.directions
        if tracker is None or directions is None:
            return ()
        for sender, direction in directions.items():
            if sender not in self.starts:
                for event in direction.truncate():  # the connection ended inside a message
                    tracker.on_event(sender, event, 0.0)
        if not tracker.saw_handshake:
            return ()
        keys = self.session_keys
        key_problems = tuple(Problem(ProblemCode.KEYLOG, p) for p in keys.problems) if keys else ()
        handshake = tracker.result(
            capture=flow.capture,
            client=flow.client,
            server=flow.server,
            server_port=flow.server_port,
            service=flow.service,
            gaps=flow.gaps,
            problems=self._resync_problems() + flow.problems + key_problems,
            decryption=keys.status if keys else None,
            cut=any(problem.code == ProblemCode.SNAPLEN for problem in flow.problems),
            wireshark_filter=flow.wireshark_filter,
        )
        return (handshake,)

    def _started(self) -> tuple[dict[Sender, tls.TlsDirection], HandshakeTracker]:
        """Both directions and the tracker, made when the first side's TLS starts."""
        if self.directions is None or self.tracker is None:
            self.directions = {
                CLIENT: tls.TlsDirection(budget=self._budget),
                SERVER: tls.TlsDirection(budget=self._budget),
            }
            if self._keys is not None:  # a key log's secrets by client random, to read TLS 1.3
                self.session_keys = SessionKeys(self._keys)
                self.session_keys.attach(self.directions[CLIENT], self.directions[SERVER])
            self.tracker = HandshakeTracker()
        return self.directions, self.tracker

    def _resync_problems(self) -> tuple[Problem, ...]:
        return tuple(
            Problem(
                ProblemCode.RESYNC,
                f"{sender}: read from a TLS record boundary, {passed} bytes before it passed over "
                "(the capture starts inside the connection, or lacks bytes before them)",
            )
            for sender, passed in sorted(self.passed.items())
        )
