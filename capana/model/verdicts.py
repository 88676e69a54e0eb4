"""Verdicts: a chain's validation with its reasons as codes, and findings with their advice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

Status = Literal[
    "trusted", "expired", "not_yet_valid", "revoked", "untrusted", "invalid", "not_checked"
]
Severity = Literal["info", "warning", "error"]
SEVERITY_RANK: Mapping[Severity, int] = {"info": 0, "warning": 1, "error": 2}


class ReasonCode(str, Enum):
    """Why a validation came out as it did; stages after validation match these, never text."""

    NO_CERTIFICATE = "no-certificate"
    NO_TRUST_STORE = "no-trust-store"
    LEAF_UNPARSED = "leaf-unparsed"
    CHAIN_CERTIFICATE_UNPARSED = "chain-certificate-unparsed"
    NO_PATH = "no-path"
    ISSUER_NOT_FOUND = "issuer-not-found"
    SELF_SIGNED_NOT_IN_STORE = "self-signed-not-in-store"
    # A certificate named as the issuer whose key is another: by key identifier or signature.
    SAME_NAME_OTHER_KEY = "same-name-other-key"
    SIGNATURE_INVALID = "signature-invalid"
    SEARCH_LIMIT = "search-limit"
    NOT_A_CA = "not-a-ca"
    NO_BASIC_CONSTRAINTS = "no-basic-constraints"
    NO_KEY_CERT_SIGN = "no-key-cert-sign"
    PATH_LENGTH_EXCEEDED = "path-length-exceeded"
    UNSUPPORTED_CRITICAL_EXTENSION = "unsupported-critical-extension"
    # Certificates no validator may use (OpenSSL flags them invalid): see Certificate.defects.
    DUPLICATE_EXTENSION = "duplicate-extension"
    EMPTY_KEY_USAGE = "empty-key-usage"
    EXPLICIT_EC_PARAMETERS = "explicit-ec-parameters"
    # Name constraints (RFC 5280 4.2.1.10) of a CA above, broken by a name below it.
    NAME_NOT_PERMITTED = "name-not-permitted"
    NAME_EXCLUDED = "name-excluded"
    NAME_CONSTRAINT_UNSUPPORTED = "name-constraint-unsupported"
    # Revocation (RFC 5280 6.3) by the CRLs the store holds.
    REVOKED = "revoked"
    CRL_EXPIRED = "crl-expired"
    CRL_NOT_YET_VALID = "crl-not-yet-valid"
    CRL_SIGNATURE_INVALID = "crl-signature-invalid"
    CRL_ISSUER_NO_CRL_SIGN = "crl-issuer-no-crl-sign"
    CRL_UNSUPPORTED_CRITICAL_EXTENSION = "crl-unsupported-critical-extension"
    CRL_OUT_OF_SCOPE = "crl-out-of-scope"
    HASH_REFUSED = "hash-refused"
    WEAK_SIGNATURE = "weak-signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    EKU_LACKS_PURPOSE = "eku-lacks-purpose"


@dataclass(frozen=True)
class Reason:
    """One reason, as a code for programs and a sentence for people.

    ``certificates``: SHA-256 of the certificates it is about (the same-name issuer, say).
    """

    code: ReasonCode
    text: str
    certificates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Validation:
    """The verdict on one chain against one store, with the path found and every reason."""

    store: str | None
    status: Status
    anchor: str | None = None
    path: tuple[str, ...] = ()
    reasons: tuple[Reason, ...] = ()

    @property
    def codes(self) -> frozenset[ReasonCode]:
        return frozenset(reason.code for reason in self.reasons)

    def about(self, *codes: ReasonCode) -> tuple[str, ...]:
        """The certificates named by the reasons of these codes, each once."""
        wanted = set(codes)
        found = (sha for r in self.reasons if r.code in wanted for sha in r.certificates)
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class Finding:
    """What a support engineer would say, and what to do. ``code`` is a stable contract."""

    code: str
    severity: Severity
    message: str
    advice: str
    evidence: Mapping[str, Any] = field(default_factory=dict, compare=False)
