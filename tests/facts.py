"""Reading a handshake's facts in tests: certificates by SHA-256, problems and CA names as text."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from capana.certificates import name_from_der
from capana.model import Handshake


def sha256s(chain: Iterable[bytes]) -> list[str]:
    """The SHA-256 of each DER certificate, as capana names certificates."""
    return [hashlib.sha256(der).hexdigest() for der in chain]


def problem_texts(handshake: Handshake) -> list[str]:
    return [problem.text for problem in handshake.problems]


def ca_names(handshake: Handshake) -> tuple[str, ...] | None:
    """The CertificateRequest's CA names as RFC 4514 text."""
    names = handshake.requested_ca_names
    return None if names is None else tuple(name_from_der(der) for der in names)
