"""Inside a session: what a phone and the cluster said once the connection was open.

Facts (from the decoders, certificates as the DER sent): a CAPF enrolment (TCP 3804), TVS
questions (2445), a SIP or SCCP registration (5061/2443, or 5060/2000 in clear). Verdicts: the
certificates those carried, parsed, classified and (the LSC a CAPF issued) validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from capana.model.certificates import CertificateReport
from capana.model.verdicts import Validation

# Who sent a CAPF or TVS message.
Party = Literal["phone", "capf", "tvs"]
CapfOperation = Literal["install", "upgrade", "fetch", "delete", "troubleshoot", "none"]
CapfAuth = Literal["password", "none", "lsc", "mic"]
CapfResult = Literal["installed", "fetched", "deleted", "failed", "no_operation", "unknown"]
TvsStatus = Literal["trusted", "untrusted", "unknown"]
RegistrationProtocol = Literal["sip", "sccp"]
RegistrationResult = Literal["registered", "rejected", "unknown"]


@dataclass(frozen=True)
class SessionMessage:
    """One CAPF or TVS message: who sent it, its command and the names of its elements."""

    sender: Party
    command: str  # e.g. "auth_request"; "command_<n>" for a code no source names
    session_id: int
    elements: tuple[str, ...]  # e.g. ("reason", "device_name"); "element_<n>" when unnamed


@dataclass(frozen=True)
class CapfReason:
    """Why the CAPF refused the phone (or a step failed), by the protocol's reason code."""

    code: int
    text: str  # the daemons' name for the code ("unknown device"), or "reason <n>"
    info: str | None = None  # a reason_info element's text, when sent ("invalid LSC")


@dataclass(frozen=True)
class CapfSession:
    """The facts of one phone <-> CAPF session; None where the bytes do not say."""

    device: str | None
    operation: CapfOperation | None
    auth: CapfAuth | None
    key: str | None  # "RSA 2048", "EC P-256", ...: the phone's new key, or the one asked for
    issued_certificate: bytes | None  # DER of the LSC the CAPF stored on the phone
    presented_certificate: bytes | None  # DER the phone authenticated with (or sent on fetch)
    result: CapfResult
    reason: CapfReason | None  # why it was refused or failed; None when it worked
    messages: tuple[SessionMessage, ...]
    fetched_certificates: tuple[bytes, ...] = ()

    @property
    def refused(self) -> bool:
        """Did the CAPF turn the phone away (or the operation fail)?"""
        return self.result in ("failed", "no_operation")


@dataclass(frozen=True)
class TvsQuery:
    """One question to TVS and its answer ("unknown" and no roles when no answer was read)."""

    device: str | None  # as the phone names itself, e.g. "CP-8861-SEP2C3124C9F8E1"
    certificate: bytes | None  # DER of the certificate asked about
    status: TvsStatus
    roles: tuple[str, ...]  # "CCM", "CCM+TFTP", "TVS", ...; "role_<n>" for another code
    ttl: int | None  # seconds the phone may cache the answer


@dataclass(frozen=True)
class TvsSession:
    queries: tuple[TvsQuery, ...]
    messages: tuple[SessionMessage, ...]


@dataclass(frozen=True)
class Registration:
    """Whether a phone registered on this connection, as the signalling says."""

    protocol: RegistrationProtocol
    result: RegistrationResult
    status: str | None  # "200 OK", "403 Forbidden", "RegisterAck", "RegisterReject", ...
    line: str | None  # the directory number, when the messages carry it
    device: str | None = None  # SEP + MAC, when the messages carry it
    reason: str | None = None  # SCCP RegisterReject's text
    attempts: int = 0  # REGISTER / RegisterMessage seen


@dataclass(frozen=True)
class CapfReport:
    """A CAPF session with its certificates judged. The issued LSC is what the phone presents
    next: it is validated against the CAPF store (else the default), as is the certificate the
    phone authenticated with."""

    session: CapfSession
    issued: CertificateReport | None
    presented: CertificateReport | None
    issued_validation: Validation
    presented_validation: Validation


@dataclass(frozen=True)
class TvsReport:
    """TVS questions with the certificates asked about, parsed and classified (one per query,
    None where the question carried none)."""

    session: TvsSession
    certificates: tuple[CertificateReport | None, ...]
