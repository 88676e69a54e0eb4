"""Revocation by the CRLs a trust store holds (RFC 5280 6.3), judged at the capture time.

No network: only the CRLs given (PEM or DER files in a store folder, ``--crl FILE``, ``crls=``).
Each certificate of a path is checked, from the leaf up (the anchor too when self-issued, by its
own CRL), as ``openssl verify -crl_check_all -use_deltas`` checks it, so that both give the
same status:

- the CRLs considered name the certificate's issuer and are signed on the path: by the issuer,
  or by a certificate of its name above it (a key rollover), whose key identifier the CRL does
  not contradict; indirect CRLs and CRLs for some reasons only are not read;
- the one used is the one OpenSSL prefers: no critical extension capana does not read
  (issuingDistributionPoint, authorityKeyIdentifier, deltaCRLIndicator and an entry's
  certificateIssuer are read), then one whose issuingDistributionPoint covers the certificate,
  then one current at the capture time, then one of the issuer itself, then the newest;
- it is refused (the verdict is ``invalid``, and the check stops there) when its signer's
  keyUsage lacks cRLSign, its scope does not cover the certificate, its signature does not
  verify, or it has an unread critical extension. A stale CRL, or one issued after the capture,
  is a reason too (``invalid``), never a silent pass, but still says what it lists;
- a delta CRL applies as with ``-use_deltas``: when the certificate or the base points to deltas
  (freshestCRL), same issuer, authorityKeyIdentifier and issuingDistributionPoint, a base number
  at most the base's cRLNumber and its own number above it (the highest such delta);
- the certificate is revoked when the delta lists its serial, else when the base does, with a
  reason other than removeFromCRL (a delta's removeFromCRL lifts the base's certificateHold).
  A CRL issued after the capture does not make revoked a certificate it says was revoked after
  the capture (OpenSSL does not look at that date).

A certificate whose issuer has no CRL in the store is not checked (soft fail, as a server
without that CRL would). Bounds: a CRL file is read whole, up to certfiles.MAX_FILE_BYTES;
a path costs at most one signature check per CRL of an issuer on it, and those are cached.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from capana.certificates import extension_value, name_key, oid_name, self_issued, utc_text
from capana.model import Certificate, Reason, ReasonCode
from capana.signatures import check_signature

# CRL extensions whose meaning is read here; another one marked critical makes the CRL unusable.
_READ_CRITICAL = frozenset(
    {
        ExtensionOID.ISSUING_DISTRIBUTION_POINT.dotted_string,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string,
        ExtensionOID.DELTA_CRL_INDICATOR.dotted_string,
    }
)
_READ_CRITICAL_ENTRY = frozenset({CRLEntryExtensionOID.CERTIFICATE_ISSUER.dotted_string})
_KEY_USAGE = "2.5.29.15"
_FRESHEST_CRL = ExtensionOID.FRESHEST_CRL.dotted_string
_REMOVE_FROM_CRL = "remove_from_crl"
_STALE = frozenset({ReasonCode.CRL_EXPIRED, ReasonCode.CRL_NOT_YET_VALID})
# OpenSSL's order of preference among the CRLs of an issuer (its CRL_SCORE_* bits, x509_vfy.c).
_NO_CRITICAL, _IN_SCOPE, _CURRENT, _DIRECT = 8, 4, 2, 1
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----(.*?)-----END X509 CRL-----", re.S)


class CrlError(ValueError):
    """Bytes that are not a readable CRL; the message says why."""


@dataclass(frozen=True)
class Revoked:
    """One entry: the serial (hex, as :attr:`Certificate.serial`), when, and the reason code."""

    serial: str
    date: datetime
    reason: str | None  # cryptography's ReasonFlags value ("key_compromise", "remove_from_crl")


@dataclass(frozen=True)
class Scope:
    """The issuingDistributionPoint of a CRL (RFC 5280 5.2.5); the default covers everything."""

    only_user: bool = False
    only_ca: bool = False
    only_attributes: bool = False
    indirect: bool = False
    some_reasons: bool = False
    relative_name: bool = False  # nameRelativeToCRLIssuer: not read, the CRL is not used
    full_names: tuple[bytes, ...] = ()  # DER of each GeneralName of its distributionPoint


@dataclass(frozen=True, eq=False)
class RevocationList:
    """One CRL as read; equal to another exactly when the DER bytes are equal."""

    sha256: str
    issuer: str  # RFC 4514 text, for people; matched by ``issuer_der`` in RFC 5280 form
    issuer_der: bytes
    this_update: datetime
    next_update: datetime | None
    number: int | None  # cRLNumber
    delta_base: int | None  # deltaCRLIndicator: a delta CRL on the base of that number
    revoked: Mapping[str, Revoked]
    unread_critical: tuple[str, ...]  # critical extensions (of the CRL or an entry) not read
    scope: Scope | None
    authority_key_id: bytes | None
    authority_key_der: bytes | None  # the extension's DER: a delta matches its base's
    scope_der: bytes | None
    freshest: bool  # a freshestCRL extension: delta CRLs apply to this base
    signature_algorithm: str
    signature_hash: str | None
    signature: bytes
    tbs_der: bytes
    der: bytes
    source: str = ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RevocationList) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    def __repr__(self) -> str:
        kind = f"delta on {self.delta_base}" if self.delta_base is not None else "CRL"
        return f"<RevocationList {kind} of {self.issuer}, {len(self.revoked)} revoked>"


def load_crls(data: bytes, source: str = "") -> list[RevocationList]:
    """Every CRL of a PEM text (``X509 CRL`` blocks), or the one DER CRL. Raises CrlError."""
    if b"-----BEGIN" in data:
        blobs = []
        for body in _PEM_CRL.findall(data):
            try:
                blobs.append(base64.b64decode(b"".join(body.split()), validate=True))
            except ValueError as error:
                raise CrlError(f"bad base64 in a CRL block: {error}") from error
        return [parse_crl(blob, source) for blob in blobs]
    return [parse_crl(data, source)]


def parse_crl(der: bytes, source: str = "") -> RevocationList:
    """One DER CRL; raises CrlError when cryptography refuses it (no lenient fallback)."""
    try:
        crl = x509.load_der_x509_crl(der)
        extensions = crl.extensions  # raises on an extension present twice or malformed
        entries = [_entry(item) for item in crl]
        raw = asn1_crl.CertificateList.load(der, strict=True)
        hash_algorithm = crl.signature_hash_algorithm
    except Exception as error:
        raise CrlError(f"not a readable CRL: {error}") from error
    revoked = {entry.serial: entry for entry, _ in entries}
    unread = {e.oid.dotted_string for e in extensions if e.critical} - _READ_CRITICAL
    unread |= {oid for _, critical in entries for oid in critical} - _READ_CRITICAL_ENTRY
    number = extension_value(extensions, x509.CRLNumber)
    delta = extension_value(extensions, x509.DeltaCRLIndicator)
    aki = extension_value(extensions, x509.AuthorityKeyIdentifier)
    return RevocationList(
        sha256=hashlib.sha256(der).hexdigest(),
        issuer=crl.issuer.rfc4514_string(),
        issuer_der=crl.issuer.public_bytes(),
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        number=number.crl_number if number else None,
        delta_base=delta.crl_number if delta else None,
        revoked=revoked,
        unread_critical=tuple(sorted(unread)),
        scope=_scope(raw),
        authority_key_id=aki.key_identifier if aki else None,
        authority_key_der=_extension_der(raw, "authority_key_identifier"),
        scope_der=_extension_der(raw, "issuing_distribution_point"),
        freshest=any(e.oid.dotted_string == _FRESHEST_CRL for e in extensions),
        signature_algorithm=oid_name(crl.signature_algorithm_oid),
        signature_hash=hash_algorithm.name if hash_algorithm else None,
        signature=crl.signature,
        tbs_der=crl.tbs_certlist_bytes,
        der=der,
        source=source,
    )


@dataclass(frozen=True)
class Revocation:
    """What the CRLs say of a path: reasons it is revoked, and reasons a CRL could not be used."""

    revoked: tuple[Reason, ...] = ()
    unusable: tuple[Reason, ...] = ()


NOT_CHECKED = Revocation()


class CrlIndex:
    """The CRLs of a store by issuer name (RFC 5280 form), base CRLs and deltas apart."""

    def __init__(self, crls: Iterable[RevocationList]) -> None:
        self.bases: dict[str, list[RevocationList]] = {}
        self.deltas: dict[str, list[RevocationList]] = {}
        for crl in crls:
            table = self.deltas if crl.delta_base is not None else self.bases
            table.setdefault(name_key(crl.issuer_der), []).append(crl)

    def __bool__(self) -> bool:
        return bool(self.bases or self.deltas)

    def check(self, path: Sequence[Certificate], at: datetime) -> Revocation:
        """Revocation of the certificates of ``path``, from the leaf up; the anchor too when
        self-issued (by its own CRL), as OpenSSL's ``-crl_check_all`` does.

        As OpenSSL, the check stops at the first certificate found revoked or whose CRL is
        refused (a stale CRL only adds its reason), so both name the same status.
        """
        revoked: list[Reason] = []
        unusable: list[Reason] = []
        for depth, cert in enumerate(path):
            above = path[depth + 1 :] or ((cert,) if self_issued(cert) else ())
            key = name_key(cert.issuer_der)
            if above and (key in self.bases or key in self.deltas):
                found, problems = self._check_one(cert, above, key, at)
                revoked += found
                unusable += problems
                if found or any(reason.code not in _STALE for reason in problems):
                    break
        return Revocation(tuple(revoked), tuple(dict.fromkeys(unusable)))

    def _check_one(
        self, cert: Certificate, above: Sequence[Certificate], key: str, at: datetime
    ) -> tuple[list[Reason], list[Reason]]:
        """``cert``'s revocation by the best CRL of its issuer (``above[0]``), as OpenSSL picks
        it: signed on the path, without unread critical extensions, in scope, current, by the
        issuer itself rather than an ancestor of its name, then the newest."""
        scored: list[tuple[int, RevocationList, Certificate]] = []
        ignored: list[Reason] = []
        for crl in self.bases.get(key, []):
            signer = _signer(crl, above)
            if signer is None:
                text = "its authorityKeyIdentifier names no certificate of the path"
                ignored.append(_reason(ReasonCode.CRL_SIGNATURE_INVALID, cert, text, crl))
            elif crl.scope and (crl.scope.indirect or crl.scope.some_reasons):
                text = "indirect CRLs and CRLs for some reasons only are not read"
                ignored.append(_reason(ReasonCode.CRL_OUT_OF_SCOPE, cert, text, crl))
            else:
                score = (
                    _NO_CRITICAL * (not crl.unread_critical)
                    + _IN_SCOPE * (_outside_scope(crl.scope, cert) is None)
                    + _CURRENT * (_dated(crl, at) is None)
                    + _DIRECT * (signer is above[0])
                )
                scored.append((score, crl, signer))
        if not scored:
            lone = _reason(ReasonCode.CRL_OUT_OF_SCOPE, cert, "only delta CRLs, no base CRL")
            return [], ignored or [lone]
        _, base, signer = max(scored, key=lambda item: (item[0], item[1].this_update))
        problems = [] if _dated(base, at) is None else [_stale(base, cert, at)]
        refusal = _refusal(base, cert, signer)
        if refusal is not None:
            return [], [*problems, refusal]
        delta, delta_problems = self._delta(base, cert, signer, at)
        listed = _listed(delta or base, cert, at)
        if delta is not None and cert.serial not in delta.revoked:
            listed = _listed(base, cert, at)
        return ([listed] if listed else []), problems + delta_problems

    def _delta(
        self, base: RevocationList, cert: Certificate, signer: Certificate, at: datetime
    ) -> tuple[RevocationList | None, list[Reason]]:
        """The delta CRL that applies to ``base`` (highest number), and why it cannot be used."""
        if base.number is None or not (base.freshest or _FRESHEST_CRL in cert.extensions):
            return None, []
        fitting = [
            delta
            for delta in self.deltas.get(name_key(base.issuer_der), [])
            if delta.delta_base is not None
            and delta.number is not None
            and delta.delta_base <= base.number < delta.number
            and delta.authority_key_der == base.authority_key_der
            and delta.scope_der == base.scope_der
        ]
        if not fitting:
            return None, []
        delta = max(fitting, key=lambda crl: crl.number or 0)
        refusal = _refusal(delta, cert, signer)
        if refusal is not None:
            return None, [refusal]
        dated = _dated(delta, at)
        return delta, [] if dated is None else [_stale(delta, cert, at)]


def _signer(crl: RevocationList, above: Sequence[Certificate]) -> Certificate | None:
    """Who signed ``crl`` on the path: the certificate's issuer (``above[0]``), else a
    certificate of the issuer's name above it (a key rollover), whose key identifier the CRL
    does not contradict (OpenSSL's crl_akid_check). None: another CA's CRL."""
    if _key_fits(crl, above[0]):
        return above[0]
    name = name_key(crl.issuer_der)
    return next(
        (c for c in above[1:] if name_key(c.subject_der) == name and _key_fits(crl, c)), None
    )


def _key_fits(crl: RevocationList, cert: Certificate) -> bool:
    key_id = crl.authority_key_id
    return key_id is None or cert.subject_key_id is None or key_id == cert.subject_key_id


def _refusal(crl: RevocationList, cert: Certificate, signer: Certificate) -> Reason | None:
    """Why ``crl``, signed by ``signer``, cannot speak for ``cert``, in OpenSSL's order."""
    who = f"{signer.subject} ({signer.sha256[:16]}…)"
    base = crl.delta_base is None  # a delta's issuer and scope are its base's, checked then
    if base and _KEY_USAGE in signer.extensions and "crl_sign" not in signer.key_usage:
        text = f"{who} lacks keyUsage cRLSign"
        return _reason(ReasonCode.CRL_ISSUER_NO_CRL_SIGN, cert, text, crl)
    outside = _outside_scope(crl.scope, cert) if base else None
    if outside:
        return _reason(ReasonCode.CRL_OUT_OF_SCOPE, cert, outside, crl)
    failure = _signature_failure(crl, signer)
    if failure is not None:
        return _reason(ReasonCode.CRL_SIGNATURE_INVALID, cert, f"{failure} by {who}", crl)
    if crl.unread_critical:
        text = f"critical extension(s) {', '.join(crl.unread_critical)} not supported"
        return _reason(ReasonCode.CRL_UNSUPPORTED_CRITICAL_EXTENSION, cert, text, crl)
    return None


@lru_cache(maxsize=1024)
def _signature_failure(crl: RevocationList, issuer: Certificate) -> str | None:
    """Why ``issuer``'s key does not verify ``crl``; cached: every chain checks the same CRLs."""
    return check_signature(
        crl.signature_algorithm,
        crl.signature_hash,
        crl.signature,
        crl.tbs_der,
        issuer.public_key_der,
    )


def _outside_scope(scope: Scope | None, cert: Certificate) -> str | None:
    """Why the issuingDistributionPoint does not cover ``cert`` (OpenSSL's crl_crldp_check)."""
    if scope is None:
        return None
    if scope.only_attributes:
        return "it covers attribute certificates only"
    if scope.only_user and cert.is_ca:
        return "it covers end-entity certificates only"
    if scope.only_ca and not cert.is_ca:
        return "it covers CA certificates only"
    if scope.relative_name:
        return "a distribution point relative to the issuer's name is not read"
    if scope.full_names and set(scope.full_names).isdisjoint(_distribution_points(cert.der)):
        return "its distribution point is not one the certificate names"
    return None


def _dated(crl: RevocationList, at: datetime) -> ReasonCode | None:
    if at < crl.this_update:
        return ReasonCode.CRL_NOT_YET_VALID
    if crl.next_update is not None and at > crl.next_update:
        return ReasonCode.CRL_EXPIRED
    return None


def _stale(crl: RevocationList, cert: Certificate, at: datetime) -> Reason:
    code = _dated(crl, at)
    if code == ReasonCode.CRL_NOT_YET_VALID:
        text = f"issued {utc_text(crl.this_update)}, after the capture time {utc_text(at)}"
    else:
        code = ReasonCode.CRL_EXPIRED
        due = utc_text(crl.next_update)
        text = f"next update was due {due}, before the capture time {utc_text(at)}"
    return _reason(code, cert, text, crl)


def _listed(crl: RevocationList, cert: Certificate, at: datetime) -> Reason | None:
    """REVOKED when ``crl`` lists ``cert`` as revoked at ``at`` (removeFromCRL: not)."""
    entry = crl.revoked.get(cert.serial)
    if entry is None or entry.reason == _REMOVE_FROM_CRL:
        return None
    if entry.date > at and crl.this_update > at:  # a later CRL: revoked after the capture
        return None
    why = f" ({entry.reason})" if entry.reason else ""
    kind = "delta CRL" if crl.delta_base is not None else "CRL"
    text = (
        f"{cert.subject} (serial {cert.serial}) revoked {utc_text(entry.date)}{why} by the "
        f"{kind} of {crl.issuer} issued {utc_text(crl.this_update)}"
    )
    return Reason(ReasonCode.REVOKED, text, (cert.sha256,))


def _reason(
    code: ReasonCode, cert: Certificate, detail: str, crl: RevocationList | None = None
) -> Reason:
    which = f"CRL of {crl.issuer}" if crl else "CRL"
    if crl is not None and crl.delta_base is not None:
        which = f"delta {which}"
    source = f" ({crl.source})" if crl is not None and crl.source else ""
    text = f"the {which}{source} cannot be used for {cert.subject}: {detail}"
    return Reason(code, text, (cert.sha256,))


# --- reading ------------------------------------------------------------------------------------


def _entry(item: x509.RevokedCertificate) -> tuple[Revoked, set[str]]:
    """An entry and its critical extension OIDs."""
    extensions = item.extensions
    reason = extension_value(extensions, x509.CRLReason)
    revoked = Revoked(
        serial=format(item.serial_number, "x"),
        date=item.revocation_date_utc,
        reason=reason.reason.name if reason else None,
    )
    return revoked, {e.oid.dotted_string for e in extensions if e.critical}


def _scope(raw: asn1_crl.CertificateList) -> Scope | None:
    idp = raw.issuing_distribution_point_value
    if idp is None:
        return None
    point = idp["distribution_point"]
    relative = point.name == "name_relative_to_crl_issuer" if point.native is not None else False
    full = (
        tuple(name.dump() for name in point.chosen)
        if point.native is not None and point.name == "full_name"
        else ()
    )
    return Scope(
        only_user=bool(idp["only_contains_user_certs"].native),
        only_ca=bool(idp["only_contains_ca_certs"].native),
        only_attributes=bool(idp["only_contains_attribute_certs"].native),
        indirect=bool(idp["indirect_crl"].native),
        some_reasons=idp["only_some_reasons"].native is not None,
        relative_name=relative,
        full_names=full,
    )


def _extension_der(raw: asn1_crl.CertificateList, name: str) -> bytes | None:
    extensions = raw["tbs_cert_list"]["crl_extensions"]
    for extension in extensions if extensions.native is not None else ():
        if extension["extn_id"].native == name:
            return bytes(extension["extn_value"].contents)
    return None


@lru_cache(maxsize=1024)
def _distribution_points(der: bytes) -> tuple[bytes, ...]:
    """DER of the fullName GeneralNames of the certificate's cRLDistributionPoints that name
    no cRLIssuer (an indirect one is not read)."""
    try:
        points = asn1_x509.Certificate.load(der).crl_distribution_points_value
    except Exception:  # a malformed extension: nothing matches it
        return ()
    found: list[bytes] = []
    for point in points or ():
        name = point["distribution_point"]
        direct = point["crl_issuer"].native is None
        if direct and name.native is not None and name.name == "full_name":
            found += [general_name.dump() for general_name in name.chosen]
    return tuple(found)
