"""NSS key log text (what ``SSLKEYLOGFILE`` writes) in, the secrets of each TLS session out.

A line is ``LABEL <client random hex> <secret hex>``; ``#`` starts a comment. TLS <= 1.2 sessions
log ``CLIENT_RANDOM`` (the master secret), TLS 1.3 sessions one traffic secret per line. Lines
come from a file, from pcapng Decryption Secrets Blocks, or both: :class:`CaptureKeys` looks in a
capture's own blocks first, then in the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

MASTER_SECRET = "CLIENT_RANDOM"
CLIENT_HANDSHAKE = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
SERVER_HANDSHAKE = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
CLIENT_APPLICATION = "CLIENT_TRAFFIC_SECRET_0"
SERVER_APPLICATION = "SERVER_TRAFFIC_SECRET_0"
LABELS = frozenset(
    {
        MASTER_SECRET,
        CLIENT_HANDSHAKE,
        SERVER_HANDSHAKE,
        CLIENT_APPLICATION,
        SERVER_APPLICATION,
        "CLIENT_EARLY_TRAFFIC_SECRET",
        "EARLY_EXPORTER_SECRET",
        "EXPORTER_SECRET",
    }
)

# Bounds. An NSS line is under 250 characters; a longer one is not a key log line. Each session
# holds at most len(LABELS) secrets of at most MAX_SECRET bytes, so MAX_SESSIONS caps memory
# near 200 MiB for a hostile file and far less for a real one.
MAX_LINE = 1024
MAX_SECRET = 64
RANDOM_LENGTH = 32
MAX_SESSIONS = 1 << 18
_MAX_PROBLEMS = 10


class KeyLogError(Exception):
    """The key log file cannot be read; the message names it."""


@dataclass(frozen=True)
class SessionSecrets:
    """The secrets logged for one client random, by label."""

    client_random: bytes
    secrets: MappingProxyType[str, bytes]

    def get(self, label: str) -> bytes | None:
        return self.secrets.get(label)

    @property
    def master_secret(self) -> bytes | None:
        return self.secrets.get(MASTER_SECRET)


class KeyLog:
    """Secrets by client random. ``problems`` says which lines were skipped, and why.

    >>> log = KeyLog()
    >>> log.add_text("# comment\\nCLIENT_RANDOM " + "00" * 32 + " " + "11" * 48 + "\\n")
    >>> len(log.secrets(bytes(32)).master_secret)
    48
    """

    def __init__(self) -> None:
        self._sessions: dict[bytes, dict[str, bytes]] = {}
        self.problems: list[str] = []
        self.lines = 0  # lines read, comments and blanks included
        self._skipped = 0

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> KeyLog:
        """The key log in a file, read line by line. Raises KeyLogError if it cannot be read."""
        log = cls()
        try:
            with open(path, "rb") as file:
                while line := file.readline(MAX_LINE + 1):
                    if len(line) > MAX_LINE and not line.endswith(b"\n"):
                        log.lines += 1
                        log._skip(f"line {log.lines} is over {MAX_LINE} characters")
                        while line and not line.endswith(b"\n"):  # skip it, MAX_LINE at a time
                            line = file.readline(MAX_LINE)
                        continue
                    log.add_line(line)
        except OSError as error:
            raise KeyLogError(f"{os.fspath(path)}: cannot read key log: {error}") from None
        return log

    def __len__(self) -> int:
        return len(self._sessions)

    def add_text(self, text: str | bytes) -> None:
        self.add_lines(text.splitlines())

    def add_lines(self, lines: Iterable[str | bytes]) -> None:
        for line in lines:
            self.add_line(line)

    def add_line(self, line: str | bytes) -> None:
        """One line of key log; a malformed one is counted in ``problems``, never raised."""
        self.lines += 1
        if isinstance(line, bytes):
            line = line.decode("ascii", "replace")
        line = line.strip()
        if not line or line.startswith("#"):
            return
        parts = line.split()
        if len(line) > MAX_LINE or len(parts) != 3:
            self._skip(f"line {self.lines} is not 'LABEL CLIENT_RANDOM SECRET'")
            return
        label, random_hex, secret_hex = parts
        if label not in LABELS:
            self._skip(f"line {self.lines}: unknown label {label[:40]!r}")
            return
        try:
            client_random, secret = bytes.fromhex(random_hex), bytes.fromhex(secret_hex)
        except ValueError:
            self._skip(f"line {self.lines}: not hexadecimal")
            return
        if len(client_random) != RANDOM_LENGTH or not 0 < len(secret) <= MAX_SECRET:
            self._skip(f"line {self.lines}: client random or secret of the wrong length")
            return
        session = self._sessions.get(client_random)
        if session is None:
            if len(self._sessions) >= MAX_SESSIONS:
                self._skip(f"more than {MAX_SESSIONS} sessions; later ones were skipped")
                return
            session = self._sessions[client_random] = {}
        session[label] = secret

    def secrets(self, client_random: bytes) -> SessionSecrets | None:
        session = self._sessions.get(client_random)
        if session is None:
            return None
        return SessionSecrets(client_random, MappingProxyType(dict(session)))

    def _skip(self, reason: str) -> None:
        self._skipped += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(reason)
        elif len(self.problems) == _MAX_PROBLEMS:
            self.problems.append("more lines were skipped")


class CaptureKeys:
    """The secrets one capture can use: its Decryption Secrets Blocks, then a key log file.

    ``dsb_lines`` is the reader's list, which grows while the capture is read (a block comes
    before the packets it serves); lines are parsed when a session asks, once each.
    """

    def __init__(self, dsb_lines: list[bytes], file: KeyLog | None = None) -> None:
        self._lines = dsb_lines
        self.embedded = KeyLog()
        self.file = file

    @property
    def problems(self) -> list[str]:
        """Lines skipped, in the capture's blocks and in the file."""
        self._catch_up()
        embedded = [f"decryption secrets block {problem}" for problem in self.embedded.problems]
        return embedded + (self.file.problems if self.file else [])

    def __call__(self, client_random: bytes) -> SessionSecrets | None:
        self._catch_up()
        found = [
            log.secrets(client_random) for log in (self.file, self.embedded) if log is not None
        ]
        merged = {k: v for secrets in found if secrets for k, v in secrets.secrets.items()}
        return SessionSecrets(client_random, MappingProxyType(merged)) if merged else None

    def _catch_up(self) -> None:
        if len(self._lines) > self.embedded.lines:
            self.embedded.add_lines(self._lines[self.embedded.lines :])
