"""Would the server have accepted this chain at the time of the capture? Paths by signature.

Why not a library: cryptography's built-in verifier rejects SHA-1 and leaves without SAN (real
MICs and Cisco's older CAs have both), and pyhanko-certvalidator pulls aiohttp and oscrypto. So
the path rules are written here on cryptography's signature primitives, and the tests hold every
status to ``openssl verify``'s (tests/openssl_oracle.py). A complete path is judged for the rules
(basicConstraints, keyUsage, pathLen, critical extensions, the certificates' parse-time defects),
name constraints (capana.name_constraints), revocation by the store's CRLs (capana.revocation)
and the dates at capture time, in OpenSSL's order of precedence.

The search: from the leaf, every certificate (in the store or sent by the peer) whose subject is
the child's issuer is a candidate, ranked by AKI/SKI; an edge exists only when the candidate's key
verifies the child's signature. A path ends at any store certificate (CUCM trusts CAPFs and
manufacturing CAs directly, so an anchor need not be self-signed). Bounds: at most MAX_DEPTH
certificates on a path and MAX_SIGNATURE_CHECKS signature checks per chain, so a hostile peer
sending many same-name certificates (even ones signing each other) costs at most
MAX_SIGNATURE_CHECKS signature checks and MAX_STEPS partial paths, never exponential work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from capana.certificates import name_key, self_issued, utc_text
from capana.model import (
    AnyCertificate,
    Certificate,
    Reason,
    ReasonCode,
    Status,
    UnparsedCertificate,
    Validation,
)
from capana.name_constraints import check_name_constraints
from capana.revocation import NOT_CHECKED, CrlIndex
from capana.signatures import signed_by
from capana.truststore import TrustStore

Role = Literal["client", "server"]

MAX_DEPTH = 8  # certificates on one path, anchor included
MAX_SIGNATURE_CHECKS = 64  # per chain
MAX_STEPS = 512  # partial paths explored per chain (cached edges can still branch)

# Critical extensions a validator may accept (OpenSSL's list, minus those nobody here enforces:
# policy mappings are refused rather than ignored). Name constraints are enforced whether
# critical or not, as OpenSSL does (capana.name_constraints).
_UNDERSTOOD_CRITICAL = frozenset(
    {
        "2.5.29.15",  # keyUsage
        "2.5.29.17",  # subjectAltName
        "2.5.29.19",  # basicConstraints
        "2.5.29.30",  # nameConstraints
        "2.5.29.31",  # cRLDistributionPoints (read for a CRL's scope)
        "2.5.29.32",  # certificatePolicies (no policy is required)
        "2.5.29.36",  # policyConstraints
        "2.5.29.37",  # extKeyUsage
        "2.5.29.54",  # inhibitAnyPolicy
    }
)
_KEY_USAGE = "2.5.29.15"
_WEAK_HASHES = frozenset({"sha1"})
_REFUSED_HASHES = frozenset({"md2", "md4", "md5"})
_EKU_NAMES = {
    "client": ("clientAuth", "client_auth"),
    "server": ("serverAuth", "server_auth"),
}
_ANY_EKU = ("anyExtendedKeyUsage", "any_extended_key_usage")
# Which complete path to report when several verify: the best; a revoked one last.
_STATUS_RANK = {"trusted": 0, "expired": 1, "not_yet_valid": 1, "invalid": 2, "revoked": 3}


def validate_chain(
    chain: Sequence[AnyCertificate],
    store: TrustStore | None,
    at: datetime,
    *,
    role: Role | None = None,
) -> Validation:
    """Validate ``chain`` (leaf first, as sent) against ``store`` as of ``at`` (capture time).

    ``role`` ("client"/"server") only adds a reason when the leaf's EKU lacks that purpose; it
    never changes the status (openssl verify without -purpose does not check it either).

    >>> validate_chain([], None, datetime.now(timezone.utc)).status
    'not_checked'
    """
    name = store.name if store else None
    if not chain:
        return Validation(name, "not_checked", reasons=(_reason(ReasonCode.NO_CERTIFICATE),))
    if store is None:
        return Validation(name, "not_checked", reasons=(_reason(ReasonCode.NO_TRUST_STORE),))
    leaf = chain[0]
    if isinstance(leaf, UnparsedCertificate):
        reason = Reason(
            ReasonCode.LEAF_UNPARSED, f"leaf certificate cannot be parsed: {leaf.error}"
        )
        return Validation(name, "invalid", path=(leaf.sha256,), reasons=(reason,))
    sent = [c for c in chain[1:] if isinstance(c, Certificate)]
    notes = [
        Reason(
            ReasonCode.CHAIN_CERTIFICATE_UNPARSED,
            f"ignored an unparseable certificate in the chain ({c.sha256[:16]}…)",
            (c.sha256,),
        )
        for c in chain[1:]
        if isinstance(c, UnparsedCertificate)
    ]
    search = _PathSearch(leaf, sent, store, _utc(at))
    verdict = search.run()
    notes += _eku_notes(leaf, role)
    return Validation(
        name, verdict.status, verdict.anchor, verdict.path, (*verdict.reasons, *notes)
    )


_REASON_TEXT = {
    ReasonCode.NO_CERTIFICATE: "no certificate",
    ReasonCode.NO_TRUST_STORE: "no trust store given",
    ReasonCode.NO_PATH: "no path to an anchor of the store",
}


def _reason(code: ReasonCode) -> Reason:
    return Reason(code, _REASON_TEXT[code])


@dataclass(frozen=True)
class _Verdict:
    status: Status
    anchor: str | None
    path: tuple[str, ...]
    reasons: tuple[Reason, ...]


class _PathSearch:
    """Depth-first search over signature edges; keeps the best complete path it finds."""

    def __init__(
        self, leaf: Certificate, sent: list[Certificate], store: TrustStore, at: datetime
    ) -> None:
        self.leaf = leaf
        self.at = at
        self.store_name = store.name
        self.anchors = {c.sha256 for c in store.certificates}
        self.crls = CrlIndex(store.crls)
        by_sha = {c.sha256: c for c in (*store.certificates, *sent)}
        self.by_subject: dict[str, list[Certificate]] = {}
        for cert in by_sha.values():
            self.by_subject.setdefault(name_key(cert.subject_der), []).append(cert)
        self.checks = 0
        self.steps = 0
        self.edges: dict[tuple[str, str], str | None] = {}
        self.best: _Verdict | None = None
        self.longest: tuple[Certificate, ...] = (leaf,)
        self.misses: list[Reason] = []

    def run(self) -> _Verdict:
        self._extend((self.leaf,))
        if self.best:
            return self.best
        path = tuple(c.sha256 for c in self.longest)
        reasons = tuple(dict.fromkeys(self.misses)) or (_reason(ReasonCode.NO_PATH),)
        return _Verdict("untrusted", None, path, reasons)

    def _extend(self, path: tuple[Certificate, ...]) -> None:
        top = path[-1]
        self.steps += 1
        if self.steps > MAX_STEPS:
            self._miss(ReasonCode.SEARCH_LIMIT, f"path search stopped after {MAX_STEPS} steps")
            return
        if len(path) > len(self.longest):
            self.longest = path
        if top.sha256 in self.anchors:
            self._complete(path)
            return
        if len(path) >= MAX_DEPTH:
            self._miss(ReasonCode.SEARCH_LIMIT, f"path search stopped at {MAX_DEPTH} certificates")
            return
        on_path = {c.sha256 for c in path}
        named = [
            c for c in self.by_subject.get(name_key(top.issuer_der), ()) if c.sha256 not in on_path
        ]
        # As OpenSSL: a certificate whose SKI differs from the child's AKI is not its issuer,
        # even when its key verifies the signature (X509_V_ERR_AKID_SKID_MISMATCH).
        candidates = [c for c in named if not _key_ids_differ(top, c)]
        for other in named:
            if _key_ids_differ(top, other):
                self._miss(
                    ReasonCode.SAME_NAME_OTHER_KEY,
                    f"{other.subject} ({other.sha256[:16]}…) did not sign {top.subject}: same "
                    "name, another key by its key identifier (a regenerated CAPF or a forged "
                    "issuer)",
                    other,
                )
        if not candidates:
            if not named:
                self.misses.append(self._no_issuer(top))
            return
        for issuer in sorted(candidates, key=lambda c: self._rank(top, c)):
            if self._done():
                return
            if self.checks >= MAX_SIGNATURE_CHECKS:
                self._miss(
                    ReasonCode.SEARCH_LIMIT,
                    f"path search stopped after {MAX_SIGNATURE_CHECKS} checks",
                )
                return
            failure = self._edge(top, issuer)
            if failure is None:
                self._extend((*path, issuer))
            else:
                self.misses.append(self._not_signed(top, issuer, failure))

    def _miss(self, code: ReasonCode, text: str, about: Certificate | None = None) -> None:
        self.misses.append(Reason(code, text, (about.sha256,) if about else ()))

    def _not_signed(self, child: Certificate, issuer: Certificate, failure: str) -> Reason:
        # A failed signature is no edge: same name, another key is "untrusted", even when the
        # key identifiers match (they are copied as easily as names).
        who = f"{issuer.subject} ({issuer.sha256[:16]}…)"
        if _key_ids_match(child, issuer):
            text = f"{failure}: {child.subject} by {who} although the key identifiers match"
            return Reason(ReasonCode.SIGNATURE_INVALID, text, (issuer.sha256,))
        text = (
            f"{who} did not sign {child.subject}: same name, another key "
            "(a regenerated CAPF or a forged issuer)"
        )
        return Reason(ReasonCode.SAME_NAME_OTHER_KEY, text, (issuer.sha256,))

    def _no_issuer(self, top: Certificate) -> Reason:
        where = f"store {self.store_name!r}" if self.store_name else "the store"
        if self_issued(top):
            return Reason(
                ReasonCode.SELF_SIGNED_NOT_IN_STORE, f"self-signed {top.subject} is not in {where}"
            )
        return Reason(
            ReasonCode.ISSUER_NOT_FOUND,
            f"issuer {top.issuer} of {top.subject} is neither in {where} nor sent in the chain",
        )

    def _rank(self, child: Certificate, issuer: Certificate) -> tuple[int, int]:
        """Matching key identifiers first, then unknown; anchors first."""
        key_id = 0 if _key_ids_match(child, issuer) else 1
        return key_id, 0 if issuer.sha256 in self.anchors else 1

    def _edge(self, child: Certificate, issuer: Certificate) -> str | None:
        key = (child.sha256, issuer.sha256)
        if key not in self.edges:
            self.checks += 1
            self.edges[key] = signed_by(child, issuer)
        return self.edges[key]

    def _complete(self, path: tuple[Certificate, ...]) -> None:
        verdict = _judge(path, self.at, self.crls)
        if self.best is None or _STATUS_RANK[verdict.status] < _STATUS_RANK[self.best.status]:
            self.best = verdict

    def _done(self) -> bool:
        return self.best is not None and self.best.status == "trusted"


def _judge(path: tuple[Certificate, ...], at: datetime, crls: CrlIndex) -> _Verdict:
    """Status of a path whose signatures verify: revocation, then the rules, then the dates.

    The order of OpenSSL's checks, so that both name the same status: a certificate with a
    defect makes the path ``invalid`` (OpenSSL builds no path through it), a revoked one makes
    it ``revoked`` even when it also breaks a rule, a certificate not yet valid wins over an
    expired one and over name constraints (checked last).
    """
    broken: list[Reason] = []
    notes: list[Reason] = []
    for depth, issuer in enumerate(path[1:], start=1):
        child = path[depth - 1]
        broken += _issuer_rules(issuer, child, path[1:depth], anchor=depth == len(path) - 1)
        hash_name = (child.signature_hash or "").lower()
        if hash_name in _REFUSED_HASHES:
            text = f"signature hash {hash_name} on {child.subject} is not accepted"
            broken.append(Reason(ReasonCode.HASH_REFUSED, text, (child.sha256,)))
        elif hash_name in _WEAK_HASHES:
            notes.append(Reason(ReasonCode.WEAK_SIGNATURE, f"weak signature: {hash_name}"))
    for cert in path:
        broken += [_about(defect, cert) for defect in cert.defects]
        broken += [
            Reason(
                ReasonCode.UNSUPPORTED_CRITICAL_EXTENSION,
                f"unsupported critical extension {oid} in {cert.subject}",
                (cert.sha256,),
            )
            for oid in sorted(cert.critical_extensions - _UNDERSTOOD_CRITICAL)
        ]
    named = check_name_constraints(path)
    revocation = crls.check(path, at) if crls else NOT_CHECKED
    broken += revocation.unusable
    dates = [problem for problem in (_date_problem(cert, at) for cert in path) if problem]
    early = any(problem[0] == "not_yet_valid" for problem in dates)
    status: Status = "trusted"
    if any(cert.defects for cert in path):  # no validator builds a path through one
        status = "invalid"
    elif revocation.revoked:
        status = "revoked"
    elif broken:
        status = "invalid"
    elif early:
        status = "not_yet_valid"
    elif named:
        status = "invalid"
    elif dates:
        status = "expired"
    reasons = [*revocation.revoked, *broken, *named, *(problem[1] for problem in dates), *notes]
    anchor = path[-1]
    return _Verdict(
        status, anchor.subject, tuple(c.sha256 for c in path), tuple(dict.fromkeys(reasons))
    )


def _about(reason: Reason, cert: Certificate) -> Reason:
    """A parse-time defect as a reason about ``cert``."""
    return Reason(reason.code, reason.text, (cert.sha256,))


def _issuer_rules(
    issuer: Certificate, child: Certificate, between: tuple[Certificate, ...], *, anchor: bool
) -> list[Reason]:
    """RFC 5280 checks on a certificate that signed ``child``; ``between`` are the CAs below it."""
    broken = []
    about = (issuer.sha256,)
    if issuer.is_ca is False:
        text = f"{issuer.subject} is not a CA (CA:FALSE) but signed {child.subject}"
        broken.append(Reason(ReasonCode.NOT_A_CA, text, about))
    elif issuer.is_ca is None and not (anchor and _legacy_ca(issuer)):
        text = f"{issuer.subject} has no basicConstraints but signed {child.subject}"
        broken.append(Reason(ReasonCode.NO_BASIC_CONSTRAINTS, text, about))
    if _KEY_USAGE in issuer.extensions and "key_cert_sign" not in issuer.key_usage:
        text = f"{issuer.subject} lacks keyUsage keyCertSign"
        broken.append(Reason(ReasonCode.NO_KEY_CERT_SIGN, text, about))
    below = sum(1 for cert in between if not self_issued(cert))
    if issuer.path_length is not None and below > issuer.path_length:
        text = f"pathLen {issuer.path_length} of {issuer.subject} exceeded ({below} CAs below it)"
        broken.append(Reason(ReasonCode.PATH_LENGTH_EXCEEDED, text, about))
    return broken


def _legacy_ca(cert: Certificate) -> bool:
    """An anchor without basicConstraints, as OpenSSL still accepts: keyCertSign, or a v1 root.

    Only an anchor: OpenSSL demands CA:TRUE of every CA below it (X509_V_ERR_INVALID_CA).
    """
    return "key_cert_sign" in cert.key_usage or (cert.version == 1 and self_issued(cert))


def _date_problem(cert: Certificate, at: datetime) -> tuple[Status, Reason] | None:
    about = (cert.sha256,)
    if at < cert.not_before:
        text = f"{cert.subject} not valid before {utc_text(cert.not_before)}"
        return "not_yet_valid", Reason(ReasonCode.NOT_YET_VALID, text, about)
    if at > cert.not_after:
        text = f"{cert.subject} expired {utc_text(cert.not_after)}"
        return "expired", Reason(ReasonCode.EXPIRED, text, about)
    return None


def _eku_notes(leaf: Certificate, role: Role | None) -> list[Reason]:
    eku = leaf.extended_key_usage
    if role is None or not eku or any(u in eku for u in (*_EKU_NAMES[role], *_ANY_EKU)):
        return []
    text = f"leaf extendedKeyUsage lacks {_EKU_NAMES[role][0]} ({', '.join(eku)})"
    return [Reason(ReasonCode.EKU_LACKS_PURPOSE, text)]


def _key_ids_match(child: Certificate, issuer: Certificate) -> bool:
    return child.authority_key_id is not None and child.authority_key_id == issuer.subject_key_id


def _key_ids_differ(child: Certificate, issuer: Certificate) -> bool:
    return (
        child.authority_key_id is not None
        and issuer.subject_key_id is not None
        and child.authority_key_id != issuer.subject_key_id
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
