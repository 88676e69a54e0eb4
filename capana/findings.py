"""Findings: what a support engineer would say about one handshake, and what to do.

Each finding has a stable ``code`` (the README's "Findings" table lists them all), a severity,
a message naming the phone and the certificate, advice in CUCM's words, and the evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from capana.domain import (
    CAPWAP_SERVICE,
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
    "chain-invalid": ("error", "a path exists but breaks the rules (CA flag, pathLen, keyUsage)"),
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
    "capture-truncated": ("error", "the phone's certificate fell beyond the capture's snaplen"),
    "capture-gap": ("warning", "the capture misses TCP data of this handshake"),
    "capture-snaplen": ("warning", "the capture cut packets short (snaplen)"),
    "handshake-incomplete": ("warning", "the capture ends before the handshake does"),
}


def _finding(code: str, message: str, advice: str, **evidence: Any) -> Finding:
    severity = CATALOGUE[code][0]
    return Finding(code, severity, message, advice, evidence)


@dataclass(frozen=True)
class _Case:
    """Everything the rules look at for one handshake."""

    handshake: Handshake
    validation: Validation
    client_leaf: CertificateReport | None
    requested_ca_names: tuple[str, ...]
    issuer_requested: bool | None
    store: TrustStore | None

    @property
    def leaf(self) -> Certificate | None:
        return self.client_leaf.parsed if self.client_leaf else None

    @property
    def kind(self) -> str | None:
        return self.client_leaf.kind if self.client_leaf else None

    @property
    def phone(self) -> str:
        device = self.client_leaf.classification.device if self.client_leaf else None
        return device or self.handshake.client

    @property
    def server_alert(self) -> str | None:
        return self.handshake.server_fatal_alert

    @property
    def store_name(self) -> str:
        """The store capana judged with, as the admin knows it."""
        return _store_label(self.store.name if self.store else None, "no trust store")

    @property
    def server_trust(self) -> str:
        """The trust store of the server this phone talked to (what the advice asks to fix)."""
        handshake = self.handshake
        name = TRUST_STORE_BY_SERVICE.get(handshake.service) or TRUST_STORE_BY_PORT.get(
            handshake.server_port
        )
        return _store_label(name, "the server's trust store")


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
        handshake, validation, client_leaf, requested_ca_names or (), issuer_requested, store
    )
    found = [finding for rule in _RULES for finding in rule(case)]
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
    elif validation.status == "invalid":
        yield _finding(
            "chain-invalid",
            f"{case.phone}: the chain of {kind} {leaf.subject} breaks the path rules: "
            + "; ".join(r.text for r in validation.reasons),
            "Re-issue the certificate from a proper CA (CA:TRUE, keyCertSign); for a CAPF, "
            "since CUCM 14SU2 regenerate it with CA:TRUE, pathlen:0 and keyCertSign.",
            reasons=[r.text for r in validation.reasons],
        )
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


def _dated(case: _Case, leaf: Certificate) -> Finding:
    expired = case.validation.status == "expired"
    code = "certificate-expired" if expired else "certificate-not-yet-valid"
    when = case.handshake.start.isoformat() if case.handshake.start else "capture time"
    access_point = case.handshake.service == CAPWAP_SERVICE
    consequence = ""
    if access_point and case.kind == "MIC" and expired:
        consequence = "; an access point whose MIC has expired cannot join its controller"
        advice = (
            "A MIC cannot be renewed. Let the controller accept it (AireOS: 'config ap "
            "cert-expiry-ignore mic enable'; Catalyst 9800: 'ap cert-expiry-ignore mic') "
            "until the access point is replaced, and check the controller's clock (NTP)."
        )
    elif case.kind == "MIC":
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
        + "; ".join(r.text for r in case.validation.reasons)
        + consequence,
        advice,
        not_before=leaf.not_before.isoformat(),
        not_after=leaf.not_after.isoformat(),
    )


def _alert_rules(case: _Case) -> Iterator[Finding]:
    alert = case.server_alert
    status = case.validation.status
    if (
        alert is None
        and case.handshake.outcome == "established"
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
            server_outcome=case.handshake.outcome,
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
    elif status == "not_checked" and case.handshake.client_cert_status == "present":
        yield _finding(
            "server-rejected-certificate",
            f"{case.phone}: the server refused the phone's certificate ({alert})",
            f"Run capana with --trust pointing at this server's {case.server_trust} export to "
            "see which CA is missing; unknown_ca means the issuer is not in the server's trust "
            "store.",
            server_alert=alert,
        )


def _request_rules(case: _Case) -> Iterator[Finding]:
    handshake = case.handshake
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


def _capture_rules(case: _Case) -> Iterator[Finding]:
    handshake = case.handshake
    if handshake.gaps:
        yield _finding(
            "capture-gap",
            f"{case.phone}: {handshake.gaps} stretch(es) of TCP data missing from the capture",
            "Capture again closer to the phone (SPAN drops packets under load) so the verdict "
            "rests on the whole handshake.",
            gaps=handshake.gaps,
        )
    if handshake.client_cert_status == "truncated":
        yield _finding(
            "capture-truncated",
            f"{case.phone}: the capture kept only the start of each packet (snaplen): the "
            "phone's certificate is not in it",
            "Capture again with whole packets: on CUCM, 'utils network capture eth0 file NAME "
            "count 100000 size all' (by default it keeps 128 bytes of each packet); with "
            "tcpdump, '-s 0'; from a switch, a SPAN or ERSPAN session; or the phone's own 'Span "
            "to PC Port' (Phone Configuration) with a PC capturing in full.",
        )
    elif ProblemCode.SNAPLEN in handshake.problem_codes:
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


_RULES: tuple[Callable[[_Case], Iterator[Finding]], ...] = (
    _trust_rules,
    _alert_rules,
    _request_rules,
    _certificate_quality_rules,
    _capture_rules,
)


def _same_name_other_key(validation: Validation, store: TrustStore | None) -> list[Certificate]:
    """Store certificates named as an issuer on the path whose key did not sign (by validation)."""
    if store is None:
        return []
    about = set(validation.about(ReasonCode.SAME_NAME_OTHER_KEY, ReasonCode.SIGNATURE_INVALID))
    return [cert for cert in store.certificates if cert.sha256 in about]


def _store_label(name: str | None, otherwise: str) -> str:
    return TRUST_STORE_LABELS.get(name or "", otherwise)
