"""Findings: what a support engineer would say about one handshake, and what to do.

Each finding has a stable ``code`` (the README's "Findings" table lists them all), a severity,
a message naming the phone and the certificate, advice in CUCM's words, and the evidence.
The certificate and trust rules need no handshake: :func:`certificate_findings` runs them on a
certificate judged alone (``capana cert``); :func:`diagnose` runs them with the handshake rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from capana.domain import (
    CERTIFICATE_ALERTS,
    MIN_RSA_BITS,
    PHONE_SERVICES,
    TRUST_STORE_BY_PORT,
    TRUST_STORE_BY_SERVICE,
    TRUST_STORE_LABELS,
    is_manufacturing_ca,
)
from capana.model import (
    SEVERITY_RANK,
    Certificate,
    CertificateReport,
    Finding,
    Handshake,
    ProblemCode,
    ReasonCode,
    Severity,
    Validation,
)
from capana.truststore import TrustStore

# code -> (severity, one-line title). The README's table is checked against this.
CATALOGUE: dict[str, tuple[Severity, str]] = {
    "lsc-from-other-cluster": (
        "error",
        "LSC from another cluster's CAPF; server said unknown_ca",
    ),
    "lsc-issuer-not-trusted": ("error", "LSC whose CAPF is not in the trust store"),
    "capf-regenerated": ("error", "store holds a CAPF of the same name with another key"),
    "forged-manufacturing-ca": (
        "error",
        "Cisco manufacturing CA named, signature fails",
    ),
    "mic-ca-missing": ("error", "MIC whose manufacturing CA or root is not in the trust store"),
    "certificate-expired": ("error", "a certificate on the path had expired at capture time"),
    "certificate-not-yet-valid": (
        "error",
        "a certificate on the path not yet valid then",
    ),
    "certificate-revoked": ("error", "a certificate on the path was revoked at capture time (CRL)"),
    "chain-invalid": ("error", "a path exists but breaks the rules (CA flag, pathLen, keyUsage)"),
    "crl-unusable": ("error", "a CRL for the path cannot be used (stale, not signed by the CA)"),
    "issuer-not-requested": (
        "warning",
        "CertificateRequest does not list the issuer",
    ),
    "server-rejected-certificate": ("error", "the server refused the phone's certificate (alert)"),
    "verdict-disagrees-with-server": ("warning", "capana's verdict and the server's differ"),
    "no-client-certificate": (
        "warning",
        "asked for a certificate, the phone sent none",
    ),
    "certificate-not-requested": ("info", "the server did not ask the phone for a certificate"),
    "tls13-certificate-encrypted": ("info", "TLS 1.3: the phone's certificate is encrypted"),
    "weak-signature": ("info", "SHA-1 signature on the phone's certificate or its CA"),
    "short-rsa-key": ("info", "RSA key shorter than 2048 bits"),
    "mic-without-eku-or-san": ("info", "certificate without extendedKeyUsage or subjectAltName"),
    "capture-gap": ("warning", "the capture misses TCP data of this handshake"),
    "capture-snaplen": ("warning", "the capture cut packets short (snaplen)"),
    "handshake-incomplete": ("warning", "the capture ends before the handshake does"),
}


def _finding(code: str, message: str, advice: str, **evidence: Any) -> Finding:
    severity = CATALOGUE[code][0]
    return Finding(code, severity, message, advice, evidence)


# Reasons of an ``invalid`` verdict that come from a CRL the store holds, not from the path.
_CRL_CODES = frozenset(
    {
        ReasonCode.CRL_EXPIRED,
        ReasonCode.CRL_NOT_YET_VALID,
        ReasonCode.CRL_SIGNATURE_INVALID,
        ReasonCode.CRL_ISSUER_NO_CRL_SIGN,
        ReasonCode.CRL_UNSUPPORTED_CRITICAL_EXTENSION,
        ReasonCode.CRL_OUT_OF_SCOPE,
    }
)
# Reasons that accompany a verdict without making a path invalid.
_NOTE_CODES = frozenset(
    {
        ReasonCode.WEAK_SIGNATURE,
        ReasonCode.EKU_LACKS_PURPOSE,
        ReasonCode.CHAIN_CERTIFICATE_UNPARSED,
        ReasonCode.EXPIRED,
        ReasonCode.NOT_YET_VALID,
        ReasonCode.REVOKED,
    }
)


@dataclass(frozen=True)
class _Case:
    """Everything the rules look at: a judged certificate, and the handshake when there is one."""

    validation: Validation
    client_leaf: CertificateReport | None
    store: TrustStore | None
    handshake: Handshake | None = None
    requested_ca_names: tuple[str, ...] = ()
    issuer_requested: bool | None = None
    at: datetime | None = None  # when the certificate was judged, without a handshake

    @property
    def leaf(self) -> Certificate | None:
        return self.client_leaf.parsed if self.client_leaf else None

    @property
    def kind(self) -> str | None:
        return self.client_leaf.kind if self.client_leaf else None

    @property
    def phone(self) -> str:
        """The device, else the phone's address, else the certificate's name."""
        device = self.client_leaf.classification.device if self.client_leaf else None
        if device:
            return device
        if self.handshake is not None:
            return self.handshake.client
        return self.client_leaf.name if self.client_leaf else "the certificate"

    @property
    def server_alert(self) -> str | None:
        return self.handshake.server_fatal_alert if self.handshake else None

    @property
    def store_name(self) -> str:
        """The store capana judged with, as the admin knows it."""
        if self.store is None:
            return "no trust store"
        return _store_label(self.store.name, "the trust store given")

    @property
    def server_trust(self) -> str:
        """The trust store of the server this phone talked to (what the advice asks to fix)."""
        handshake = self.handshake
        if handshake is None:
            return _store_label(self.store.name if self.store else None, "the server's trust store")
        name = TRUST_STORE_BY_SERVICE.get(handshake.service) or TRUST_STORE_BY_PORT.get(
            handshake.server_port
        )
        return _store_label(name, "the server's trust store")

    @property
    def when(self) -> str:
        moment = self.handshake.start if self.handshake else self.at
        return moment.isoformat() if moment else "capture time"


def diagnose(
    handshake: Handshake,
    validation: Validation,
    *,
    client_leaf: CertificateReport | None,
    requested_ca_names: tuple[str, ...] | None,
    issuer_requested: bool | None,
    store: TrustStore | None,
) -> tuple[Finding, ...]:
    """Every finding for one handshake, most severe first."""
    case = _Case(
        validation,
        client_leaf,
        store,
        handshake,
        requested_ca_names or (),
        issuer_requested,
    )
    found = [
        *_trust_rules(case),
        *_alert_rules(case, handshake),
        *_request_rules(case, handshake),
        *_certificate_quality_rules(case),
        *_capture_rules(case, handshake),
    ]
    return _by_severity(found)


def certificate_findings(
    leaf: CertificateReport,
    validation: Validation,
    store: TrustStore | None,
    *,
    at: datetime | None = None,
) -> tuple[Finding, ...]:
    """The findings that apply to a certificate judged without a handshake (at ``at``)."""
    case = _Case(validation, leaf, store, at=at)
    return _by_severity([finding for rule in _CERTIFICATE_RULES for finding in rule(case)])


def _by_severity(found: list[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(found, key=lambda f: -SEVERITY_RANK[f.severity]))


# Rules: each yields zero or more findings. --------------------------------------------------


def _trust_rules(case: _Case) -> Iterator[Finding]:
    leaf, validation, kind = case.leaf, case.validation, case.kind
    if leaf is None or validation.status in ("trusted", "not_checked"):
        return
    issuer_cn = leaf.issuer_label
    same_name = _same_name_other_key(validation, case.store)
    if validation.status in ("expired", "not_yet_valid"):
        yield _dated(case, leaf)
    elif validation.status == "revoked":
        yield _revoked(case, leaf)
    elif validation.status == "invalid":
        yield from _invalid(case, leaf)
    elif kind == "MIC" and is_manufacturing_ca(leaf.issuer_cn) and same_name:
        yield _finding(
            "forged-manufacturing-ca",
            f"{case.phone}: certificate {leaf.subject} names '{issuer_cn}' as issuer, but the "
            f"signature does not verify with the '{issuer_cn}' certificate in {case.store_name}",
            "Treat this device as suspect (forged or corrupted MIC): do not add its issuer to any "
            "trust store. Check the phone's identity and contact Cisco TAC.",
            issuer=leaf.issuer,
            store_certificates=[c.sha256 for c in same_name],
        )
    elif kind == "MIC":
        yield _finding(
            "mic-ca-missing",
            f"{case.phone}: MIC issued by '{issuer_cn}'; neither it nor its root is in "
            f"{case.store_name}",
            f"Restore '{issuer_cn}' and its Cisco root to {case.server_trust} (CUCM ships them "
            "in its default CA list, 'show cert default-ca-list'; Cisco publishes them at "
            "cisco.com/security/pki), or install an LSC on the phone (Certificate Operation = "
            "Install/Upgrade).",
            issuer=leaf.issuer,
        )
    elif same_name:
        yield _finding(
            "capf-regenerated",
            f"{case.phone}: {kind} issued by '{issuer_cn}'; {case.store_name} holds a "
            f"'{issuer_cn}' with another key (a regenerated CAPF)",
            f"Put the old '{issuer_cn}' certificate back in CallManager-trust and CAPF-trust "
            "(and on ISE/ASA if used) until every phone has an LSC from the new CAPF, or "
            "reissue the LSC (Certificate Operation = Install/Upgrade).",
            issuer=leaf.issuer,
            store_certificates=[c.sha256 for c in same_name],
        )
    elif kind == "LSC" and case.server_alert == "unknown_ca":
        yield _finding(
            "lsc-from-other-cluster",
            f"{case.phone}: LSC issued by '{issuer_cn}', which is not in {case.store_name}, "
            "and the server answered unknown_ca: the phone still has the LSC of another cluster",
            "Register the phone with a non-secure profile, delete the old LSC (Certificate "
            "Operation = Delete), install an LSC from this cluster's CAPF, then apply the secure "
            "profile; or register secure with the MIC and no LSC.",
            issuer=leaf.issuer,
        )
    elif kind == "LSC":
        yield _finding(
            "lsc-issuer-not-trusted",
            f"{case.phone}: LSC issued by '{issuer_cn}', which is not in {case.store_name}",
            f"If '{issuer_cn}' is this cluster's CAPF, add its certificate to {case.server_trust} "
            "(and CAPF-trust); if the phone came from another cluster, delete its LSC and "
            "install one from this cluster's CAPF.",
            issuer=leaf.issuer,
        )


def _invalid(case: _Case, leaf: Certificate) -> Iterator[Finding]:
    """chain-invalid for the path's own faults; crl-unusable for a CRL that cannot be used."""
    reasons = case.validation.reasons
    crl = [r for r in reasons if r.code in _CRL_CODES]
    rules = [r for r in reasons if r.code not in _CRL_CODES | _NOTE_CODES]
    if rules or not crl:
        yield _finding(
            "chain-invalid",
            f"{case.phone}: the chain of {case.kind} {leaf.subject} breaks the path rules: "
            + "; ".join(r.text for r in rules or reasons),
            "Re-issue the certificate from a proper CA (CA:TRUE, keyCertSign); for a CAPF, "
            "since CUCM 14SU2 regenerate it with CA:TRUE, pathlen:0 and keyCertSign.",
            reasons=[r.text for r in rules or reasons],
        )
    if crl:
        yield _finding(
            "crl-unusable",
            f"{case.phone}: revocation of {case.kind} {leaf.subject} cannot be checked at "
            f"{case.when}: " + "; ".join(r.text for r in crl),
            "Give capana the CRL that was current at the capture time, as published by the CA "
            "that issued the certificate (its thisUpdate before and its nextUpdate after the "
            "capture), or remove the stale or foreign CRL from the trust store folder.",
            reasons=[r.text for r in crl],
        )


def _revoked(case: _Case, leaf: Certificate) -> Finding:
    revoked = [r for r in case.validation.reasons if r.code == ReasonCode.REVOKED]
    which = case.validation.about(ReasonCode.REVOKED)
    if leaf.sha256 in which and case.kind == "MIC":
        advice = (
            "A MIC cannot be reissued: install an LSC (Certificate Operation = Install/Upgrade, "
            "authentication by null or authentication string) and contact Cisco TAC about the "
            "revoked MIC."
        )
    elif leaf.sha256 in which:
        advice = (
            "The CA revoked this certificate: issue a new one (for an LSC: Certificate "
            "Operation = Install/Upgrade) and find out why it was revoked; if it was a mistake "
            "(certificateHold), have the CA lift it and give capana the new CRL."
        )
    else:
        advice = (
            "A CA on the path was revoked: replace it with the CA's new certificate in "
            f"{case.server_trust} and reissue the certificates it signed (for LSCs: "
            "Certificate Operation = Install/Upgrade)."
        )
    return _finding(
        "certificate-revoked",
        f"{case.phone}: {case.kind} {leaf.subject} revoked at {case.when}: "
        + "; ".join(r.text for r in revoked),
        advice,
        revoked=list(which),
    )


def _dated(case: _Case, leaf: Certificate) -> Finding:
    expired = case.validation.status == "expired"
    code = "certificate-expired" if expired else "certificate-not-yet-valid"
    when = case.when
    if case.kind == "MIC":
        advice = (
            "A MIC cannot be renewed: install an LSC (Certificate Operation = Install/Upgrade, "
            "authentication by an existing certificate is refused, use a null string or "
            "authentication string)."
            if expired
            else "Check the phone's clock and the CA dates."
        )
    else:
        advice = (
            "Reissue the LSC (Certificate Operation = Install/Upgrade) or renew the CA "
            f"certificate in {case.server_trust}."
            if expired
            else "Check clocks (NTP) on the phone and CAPF, and the CA certificate's dates."
        )
    return _finding(
        code,
        f"{case.phone}: {case.kind} {leaf.subject} out of its validity at {when}: "
        + "; ".join(r.text for r in case.validation.reasons),
        advice,
        not_before=leaf.not_before.isoformat(),
        not_after=leaf.not_after.isoformat(),
    )


def _alert_rules(case: _Case, handshake: Handshake) -> Iterator[Finding]:
    alert = case.server_alert
    status = case.validation.status
    if (
        alert is None
        and handshake.outcome == "established"
        and status
        in (
            "untrusted",
            "invalid",
        )
    ):
        yield _finding(
            "verdict-disagrees-with-server",
            f"{case.phone}: the server accepted a certificate that capana calls {status} "
            f"against {case.store_name}",
            f"The trust store given to capana is not the server's: export {case.server_trust} "
            "from this server and run again.",
            server_outcome=handshake.outcome,
        )
    if alert not in CERTIFICATE_ALERTS:
        return
    if status == "trusted":
        yield _finding(
            "verdict-disagrees-with-server",
            f"{case.phone}: capana trusts the certificate against {case.store_name}, but the "
            f"server answered {alert}",
            "The trust store given to capana is not the server's (or the service was not "
            f"restarted after a trust change): export this server's {case.server_trust} and "
            "compare.",
            server_alert=alert,
        )
    elif status == "not_checked" and handshake.client_cert_status == "present":
        yield _finding(
            "server-rejected-certificate",
            f"{case.phone}: the server refused the phone's certificate ({alert})",
            f"Run capana with --trust pointing at this server's {case.server_trust} export to "
            "see which CA is missing; unknown_ca means the issuer is not in the server's trust "
            "store.",
            server_alert=alert,
        )


def _request_rules(case: _Case, handshake: Handshake) -> Iterator[Finding]:
    status = handshake.client_cert_status
    if status == "absent":
        yield _finding(
            "no-client-certificate",
            f"{case.phone}: the server asked for a certificate and the phone sent none",
            "The phone has neither LSC nor a usable MIC for this service: check the phone's "
            "security settings and install an LSC (Certificate Operation = Install/Upgrade).",
        )
    elif status == "not_requested" and handshake.service in PHONE_SERVICES:
        yield _finding(
            "certificate-not-requested",
            f"{case.phone}: the server did not ask for a certificate on {handshake.service}",
            "Nothing to check on the phone's side here; a secure (authenticated/encrypted) "
            "device profile makes CallManager ask for the phone's certificate.",
        )
    elif status == "encrypted":
        failed = handshake.decryption == "failed"
        yield _finding(
            "tls13-certificate-encrypted",
            f"{case.phone}: TLS 1.3, the phone's certificate is encrypted in the capture"
            + (" and the key log given did not decrypt it" if failed else ""),
            "Run again with the session keys (capana scan --keylog FILE, an NSS key log; keys "
            "in a pcapng are used too), or note that phones in Authenticated mode stay below "
            "TLS 1.3.",
            decryption=handshake.decryption,
        )
    if case.issuer_requested is False and case.leaf is not None:
        issuer_cn = case.leaf.issuer_label
        yield _finding(
            "issuer-not-requested",
            f"{case.phone}: the server's CertificateRequest does not list '{issuer_cn}', the "
            "issuer of the phone's certificate",
            f"The server's trust store lacks '{issuer_cn}'. If it belongs to this cluster, add "
            f"it to {case.server_trust} (and restart the service); otherwise give the phone an "
            "LSC from a CAPF the request lists.",
            requested_ca_names=list(case.requested_ca_names),
        )


def _certificate_quality_rules(case: _Case) -> Iterator[Finding]:
    leaf = case.leaf
    if leaf is None:
        return
    if leaf.signature_hash == "sha1" or ReasonCode.WEAK_SIGNATURE in case.validation.codes:
        yield _finding(
            "weak-signature",
            f"{case.phone}: SHA-1 signature on the certificate or its CA",
            "CUCM accepts SHA-1 MICs; plan an LSC signed with SHA-256 for the long run.",
        )
    if leaf.public_key.startswith("RSA ") and int(leaf.public_key.split()[1]) < MIN_RSA_BITS:
        yield _finding(
            "short-rsa-key",
            f"{case.phone}: {leaf.public_key} key",
            "Reissue the LSC with a key size of 2048 bits or more (CAPF settings: Key Size).",
        )
    if case.kind == "MIC" and not (leaf.extended_key_usage and leaf.subject_alt_names):
        yield _finding(
            "mic-without-eku-or-san",
            f"{case.phone}: certificate without "
            + " or ".join(
                n
                for n, v in (
                    ("extendedKeyUsage", leaf.extended_key_usage),
                    ("subjectAltName", leaf.subject_alt_names),
                )
                if not v
            ),
            "Normal for Cisco MICs and accepted by CUCM; strict web-PKI validators refuse them.",
        )


def _capture_rules(case: _Case, handshake: Handshake) -> Iterator[Finding]:
    if handshake.gaps:
        yield _finding(
            "capture-gap",
            f"{case.phone}: {handshake.gaps} stretch(es) of TCP data missing from the capture",
            "Capture again closer to the phone (SPAN drops packets under load) so the verdict "
            "rests on the whole handshake.",
            gaps=handshake.gaps,
        )
    if ProblemCode.SNAPLEN in handshake.problem_codes:
        yield _finding(
            "capture-snaplen",
            f"{case.phone}: packets were cut short by the capture's snaplen",
            "Capture with the full packet length (tcpdump -s 0).",
        )
    if handshake.outcome == "incomplete" and not handshake.gaps:
        yield _finding(
            "handshake-incomplete",
            f"{case.phone}: the capture ends (or the connection closes) before the handshake "
            "finishes",
            "Capture the whole phone reboot, from power-on until registration.",
        )


# The rules that need no handshake, for certificate_findings (diagnose runs every rule).
_CERTIFICATE_RULES: tuple[Callable[[_Case], Iterator[Finding]], ...] = (
    _trust_rules,
    _certificate_quality_rules,
)


def _same_name_other_key(validation: Validation, store: TrustStore | None) -> list[Certificate]:
    """Store certificates named as an issuer on the path whose key did not sign (by validation)."""
    if store is None:
        return []
    about = set(validation.about(ReasonCode.SAME_NAME_OTHER_KEY, ReasonCode.SIGNATURE_INVALID))
    return [cert for cert in store.certificates if cert.sha256 in about]


def _store_label(name: str | None, otherwise: str) -> str:
    return TRUST_STORE_LABELS.get(name or "", otherwise)
