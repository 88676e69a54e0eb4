"""Findings: what a support engineer would say about one handshake, and what to do.

Each finding has a stable ``code`` (the README's "Findings" table lists them all), a severity,
a message naming the phone and the certificate, advice in CUCM's words, and the evidence.
The certificate and trust rules need no handshake: :func:`certificate_findings` runs them on a
certificate judged alone (``capana cert``); :func:`diagnose` runs them with the handshake rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from capana.classify import claimed_identity
from capana.domain import (
    CAPWAP_SERVICE,
    CERTIFICATE_ALERTS,
    MIN_RSA_BITS,
    PHONE_SERVICES,
    PHONE_SIGNALLING,
    SERVER_BY_STORE,
    TLS_SETTINGS_ADVICE,
    TRUST_STORE_BY_PORT,
    TRUST_STORE_BY_SERVICE,
    TRUST_STORE_LABELS,
    TRUST_STORE_UPDATE,
    is_manufacturing_ca,
)
from capana.model import (
    SEVERITY_RANK,
    CapfReport,
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

# The finding given to a refused handshake that no other finding explains.
CATCH_ALL = "handshake-rejected"

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
    "issuer-not-trusted": ("error", "neither LSC nor MIC, and its issuer is not in the store"),
    "certificate-expired": ("error", "a certificate on the path had expired at capture time"),
    "certificate-not-yet-valid": (
        "error",
        "a certificate on the path not yet valid then",
    ),
    "certificate-revoked": ("error", "a certificate on the path was revoked at capture time (CRL)"),
    "crl-unusable": ("error", "a CRL for the path cannot be used (stale, not signed by the CA)"),
    "chain-invalid": ("error", "a path exists but breaks the rules (CA flag, pathLen, keyUsage)"),
    "issuer-not-requested": (
        "warning",
        "CertificateRequest does not list the issuer",
    ),
    "server-rejected-certificate": (
        "error",
        "the server refused the phone's certificate (alert, EAP-Failure)",
    ),
    "tls-negotiation-failed": (
        "error",
        "the server ended the handshake before the phone's certificate",
    ),
    "handshake-rejected": ("error", "the handshake was refused and no other finding says why"),
    "capf-request-refused": ("error", "the CAPF refused the phone's LSC request, or it failed"),
    "registration-rejected": (
        "error",
        "CUCM rejected the phone's registration after its handshake",
    ),
    "verdict-disagrees-with-server": ("warning", "capana's verdict and the server's differ"),
    "no-client-certificate": (
        "warning",
        "asked for a certificate, the phone sent none",
    ),
    "certificate-expiring": ("warning", "a certificate on the path expires soon after capture"),
    "certificate-not-requested": ("info", "the server did not ask the phone for a certificate"),
    "registered-non-secure": ("info", "cleartext SCCP or SIP: a non-secure registration"),
    "tls13-certificate-encrypted": ("info", "TLS 1.3: the phone's certificate is encrypted"),
    "weak-signature": ("info", "SHA-1 signature on the phone's certificate or its CA"),
    "short-rsa-key": ("info", "RSA key shorter than 2048 bits"),
    "mic-without-eku-or-san": ("info", "certificate without extendedKeyUsage or subjectAltName"),
    "capture-truncated": ("error", "the phone's certificate fell beyond the capture's snaplen"),
    "capture-gap": ("warning", "the capture misses TCP data of this handshake"),
    "capture-snaplen": ("warning", "the capture cut packets short (snaplen)"),
    "handshake-incomplete": ("warning", "the capture ends before the handshake does"),
    # Files from the TFTP service (capana.file_findings), judged with the same phone's handshakes.
    "server-certificate-not-in-trust-list": (
        "error",
        "CallManager's certificate is in none of the CCM records of the phone's CTL/ITL",
    ),
    "lsc-issuer-not-cluster-capf": (
        "error",
        "the phone's LSC was not signed by the CAPF of its trust list",
    ),
    "trust-list-signature-invalid": ("error", "the CTL/ITL signature does not verify"),
    "config-signature-invalid": ("error", "the signed configuration's signature does not verify"),
    "config-signer-not-in-trust-list": (
        "error",
        "the configuration's signer is not a TFTP record of the trust list",
    ),
    "trust-list-too-large": ("error", "a trust list over 64 KB: phones refuse it"),
    "trust-list-certificate-expired": (
        "warning",
        "a trust list certificate had expired at capture time",
    ),
    "secure-profile-not-used": (
        "error",
        "configured authenticated/encrypted, but no TLS to CallManager",
    ),
    "encrypted-config-for-other-certificate": (
        "error",
        "the .enc.sgn is bound to another certificate than the phone's",
    ),
}
# Days before a certificate's notAfter (counted from the capture) when it is worth a warning.
DEFAULT_EXPIRY_DAYS = 30


def new_finding(code: str, message: str, advice: str, **evidence: Any) -> Finding:
    """A finding of a catalogued ``code``, with the catalogue's severity."""
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
    """Everything the rules look at: a judged certificate, and the handshake when there is one
    (``moment``: when it was judged, the handshake's start or the time given)."""

    validation: Validation
    client_leaf: CertificateReport | None
    store: TrustStore | None
    moment: datetime | None
    expiry_days: int = DEFAULT_EXPIRY_DAYS
    handshake: Handshake | None = None
    requested_ca_names: tuple[str, ...] = ()
    issuer_requested: bool | None = None
    tried_tls: bool = False
    capf: CapfReport | None = None  # the CAPF session read inside the handshake, judged

    @property
    def leaf(self) -> Certificate | None:
        return self.client_leaf.parsed if self.client_leaf else None

    @property
    def kind(self) -> str | None:
        return self.client_leaf.kind if self.client_leaf else None

    @property
    def phone(self) -> str:
        """The device (by its certificate, else the name it gave inside the session), else the
        client's address, else the certificate's name."""
        device = self.client_leaf.classification.device if self.client_leaf else None
        if device:
            return device
        if self.handshake is not None:
            return claimed_identity(self.handshake)[0] or self.handshake.client
        return self.client_leaf.name if self.client_leaf else "the certificate"

    @property
    def when(self) -> str:
        return self.moment.isoformat() if self.moment else "capture time"

    @property
    def is_phone(self) -> bool:
        """A phone by its certificate or by the CUCM service it spoke to; else a host."""
        leaf = self.client_leaf
        by_certificate = leaf is not None and (
            leaf.kind in ("LSC", "MIC") or leaf.classification.device is not None
        )
        handshake = self.handshake
        return by_certificate or (handshake is not None and handshake.service in PHONE_SIGNALLING)

    @property
    def who(self) -> str:
        """The phone, or the client for a host that is not one."""
        return "the phone" if self.is_phone else "the client"

    @property
    def server_alert(self) -> str | None:
        return self.handshake.server_fatal_alert if self.handshake else None

    @property
    def rejection(self) -> str | None:
        """How the server refused the client's certificate: a certificate alert, or for 802.1X
        an EAP-Failure / Access-Reject once the certificate was sent."""
        alert = self.server_alert
        if alert in CERTIFICATE_ALERTS:
            return alert
        handshake = self.handshake
        if (
            handshake is not None
            and handshake.transport in ("eapol", "radius")
            and handshake.outcome == "rejected"
            and handshake.client_cert_status == "present"
            and alert is None
        ):
            return "EAP-Failure" if handshake.transport == "eapol" else "Access-Reject"
        return None

    @property
    def store_name(self) -> str:
        """The store capana judged with, as the admin knows it."""
        if self.store is None:
            return "no trust store"
        return store_label(self.store.name)

    @property
    def server_store(self) -> str | None:
        """The name of the store of the server this phone talked to (callmanager, ise, ...);
        without a handshake, the store it was judged against."""
        handshake = self.handshake
        if handshake is None:
            return self.store.name if self.store else None
        return TRUST_STORE_BY_SERVICE.get(handshake.service) or TRUST_STORE_BY_PORT.get(
            handshake.server_port
        )

    @property
    def server(self) -> str | None:
        """CUCM, ISE or ASA, when the service says which (443 is an ASA only for a phone)."""
        if not self.is_phone and self.handshake and self.handshake.transport == "tcp":
            return None
        return SERVER_BY_STORE.get(self.server_store or "")

    @property
    def server_trust(self) -> str:
        """The trust store of the server this phone talked to (what the advice asks to fix)."""
        return TRUST_STORE_LABELS.get(self.server_store or "", "the server's trust store")

    def add_to_server_trust(self, what: str) -> str:
        """How to put ``what`` in the server's store and make it count, in that server's words."""
        update = TRUST_STORE_UPDATE.get(self.server_store or "")
        if update is None:
            return f"add {what} to the server's trust store and restart the service"
        return update.format(what=what)


def store_label(name: str | None) -> str:
    """A store as messages name it: its label on the server, by port, or the default one."""
    if name is None:
        return "the default trust store"
    if name.isdigit():
        return f"the trust store for port {name}"
    return TRUST_STORE_LABELS.get(name, f"trust store '{name}'")


def diagnose(
    handshake: Handshake,
    validation: Validation,
    *,
    client_leaf: CertificateReport | None,
    requested_ca_names: tuple[str, ...] | None,
    issuer_requested: bool | None,
    store: TrustStore | None,
    moment: datetime | None = None,
    expiry_days: int = DEFAULT_EXPIRY_DAYS,
    tried_tls: bool = False,
    capf: CapfReport | None = None,
) -> tuple[Finding, ...]:
    """Every finding for one handshake, most severe first.

    ``moment``: when it happened (else the handshake's start); ``expiry_days``: how soon an
    expiry is worth a warning; ``tried_tls``: the same client also opened a TLS session to a
    phone service in this capture (makes a cleartext registration a warning); ``capf``: the
    CAPF session read inside it, judged.
    """
    case = _Case(
        validation,
        client_leaf,
        store,
        moment or handshake.start,
        expiry_days,
        handshake,
        requested_ca_names or (),
        issuer_requested,
        tried_tls,
        capf,
    )
    found = [finding for rule in _CERTIFICATE_RULES for finding in rule(case)]
    found += [finding for rule in _HANDSHAKE_RULES for finding in rule(case, handshake)]
    found += _unexplained_rejection(case, handshake, found)
    return _by_severity(found)


def certificate_findings(
    leaf: CertificateReport,
    validation: Validation,
    store: TrustStore | None,
    *,
    at: datetime | None = None,
    expiry_days: int = DEFAULT_EXPIRY_DAYS,
) -> tuple[Finding, ...]:
    """The findings that apply to a certificate judged without a handshake (at ``at``)."""
    case = _Case(validation, leaf, store, at, expiry_days)
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
        yield new_finding(
            "forged-manufacturing-ca",
            f"{case.phone}: certificate {leaf.subject} names '{issuer_cn}' as issuer, but the "
            f"signature does not verify with the '{issuer_cn}' certificate in {case.store_name}",
            "Treat this device as suspect (forged or corrupted MIC): do not add its issuer to any "
            "trust store. Check the phone's identity and contact Cisco TAC.",
            issuer=leaf.issuer,
            store_certificates=[c.sha256 for c in same_name],
        )
    elif kind == "MIC":
        default_list = (
            " (CUCM ships them in its default CA list, 'show cert default-ca-list')"
            if case.server == "CUCM"
            else ""
        )
        yield new_finding(
            "mic-ca-missing",
            f"{case.phone}: MIC issued by '{issuer_cn}'; neither it nor its root is in "
            f"{case.store_name}",
            f"Restore '{issuer_cn}' and its Cisco root{default_list}, "
            + case.add_to_server_trust(f"'{issuer_cn}' and its root")
            + " (Cisco publishes them at cisco.com/security/pki); or install an LSC on the "
            "phone (Certificate Operation = Install/Upgrade).",
            issuer=leaf.issuer,
        )
    elif same_name:
        reissue = (
            ", or reissue the LSC from the new CAPF (Certificate Operation = Install/Upgrade)"
            if kind == "LSC"
            else ""
        )
        yield new_finding(
            "capf-regenerated",
            f"{case.phone}: {kind} issued by '{issuer_cn}'; {case.store_name} holds a "
            f"'{issuer_cn}' with another key (a regenerated CA)",
            f"Put the old '{issuer_cn}' certificate back in {case.server_trust} (and in "
            "CAPF-trust, ISE and the ASA where they check phones) until every phone has a "
            f"certificate from the new one{reissue}.",
            issuer=leaf.issuer,
            store_certificates=[c.sha256 for c in same_name],
        )
    elif kind == "LSC" and case.server_alert == "unknown_ca":
        yield new_finding(
            "lsc-from-other-cluster",
            f"{case.phone}: LSC issued by '{issuer_cn}', which is not in {case.store_name}, "
            "and the server answered unknown_ca: the phone still has the LSC of another cluster",
            "Register the phone with a non-secure profile, delete the old LSC (Certificate "
            "Operation = Delete), install an LSC from this cluster's CAPF, then apply the secure "
            "profile; or register secure with the MIC and no LSC.",
            issuer=leaf.issuer,
        )
    elif kind == "LSC":
        moved = (
            " If the phone came from another cluster, delete its LSC and install one from "
            "this cluster's CAPF."
            if case.server in ("CUCM", None)
            else ""
        )
        yield new_finding(
            "lsc-issuer-not-trusted",
            f"{case.phone}: LSC issued by '{issuer_cn}', which is not in {case.store_name}",
            f"If '{issuer_cn}' is the CAPF (or CA) that issues your LSCs, "
            + case.add_to_server_trust(f"'{issuer_cn}'")
            + "."
            + moved,
            issuer=leaf.issuer,
        )
    else:
        yield new_finding(
            "issuer-not-trusted",
            f"{case.phone}: {kind} certificate {leaf.subject}: its issuer '{issuer_cn}' is not "
            f"in {case.store_name}",
            f"If '{issuer_cn}' should be trusted, " + case.add_to_server_trust(f"'{issuer_cn}'"),
            issuer=leaf.issuer,
        )


def _invalid(case: _Case, leaf: Certificate) -> Iterator[Finding]:
    """chain-invalid for the path's own faults; crl-unusable for a CRL that cannot be used."""
    reasons = case.validation.reasons
    crl = [r for r in reasons if r.code in _CRL_CODES]
    rules = [r for r in reasons if r.code not in _CRL_CODES | _NOTE_CODES]
    if rules or not crl:
        yield new_finding(
            "chain-invalid",
            f"{case.phone}: the chain of {case.kind} {leaf.subject} breaks the path rules: "
            + "; ".join(r.text for r in rules or reasons),
            "Re-issue the certificate from a proper CA (CA:TRUE, keyCertSign); for a CAPF, "
            "since CUCM 14SU2 regenerate it with CA:TRUE, pathlen:0 and keyCertSign.",
            reasons=[r.text for r in rules or reasons],
        )
    if crl:
        yield new_finding(
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
    return new_finding(
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
    access_point = case.handshake is not None and case.handshake.service == CAPWAP_SERVICE
    consequence = ""
    if not expired:
        advice = "Check the clocks (NTP) of the phone and of the CA, and the CA's dates."
    elif access_point and case.kind == "MIC":
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
        )
    elif case.kind == "LSC":
        advice = (
            "Reissue the LSC (Certificate Operation = Install/Upgrade), or renew the CA "
            f"certificate in {case.server_trust} if it is the CA that expired."
        )
    else:
        advice = f"Renew the expired certificate (or its CA in {case.server_trust})."
    return new_finding(
        code,
        f"{case.phone}: {case.kind} {leaf.subject} out of its validity at {when}: "
        + "; ".join(r.text for r in case.validation.reasons)
        + consequence,
        advice,
        not_before=leaf.not_before.isoformat(),
        not_after=leaf.not_after.isoformat(),
    )


def _expiry_rules(case: _Case) -> Iterator[Finding]:
    """Certificates of the chain sent, or of the path found, that expire soon after the capture."""
    moment = case.moment
    if moment is None or case.validation.status not in ("trusted", "not_checked"):
        return
    horizon = moment + timedelta(days=case.expiry_days)
    store = {c.sha256: c for c in case.store.certificates} if case.store else {}
    on_path = [store[sha] for sha in case.validation.path if sha in store]
    chain = [c.certificate for c in _client_chain(case)] + on_path
    expiring = [
        cert
        for cert in dict.fromkeys(c for c in chain if isinstance(c, Certificate))
        if moment <= cert.not_after <= horizon
    ]
    if not expiring:
        return
    soonest = min(expiring, key=lambda cert: cert.not_after)
    names = "; ".join(
        f"'{cert.subject_cn or cert.subject}' on {cert.not_after.date().isoformat()} "
        f"({(cert.not_after - moment).days} days after the capture)"
        for cert in expiring
    )
    is_leaf = case.leaf is not None and soonest == case.leaf
    if is_leaf and case.kind == "LSC":
        advice = "Reissue the LSC (Certificate Operation = Install/Upgrade) before it expires."
    elif is_leaf and case.kind == "MIC":
        advice = (
            "A MIC cannot be renewed: install an LSC (Certificate Operation = Install/Upgrade)."
        )
    elif soonest.is_ca:
        advice = (
            f"Renew '{soonest.subject_cn or soonest.subject}' before it expires and add the new "
            f"one to {case.server_trust}; keep the old one until every certificate it issued "
            "has been replaced."
        )
    else:
        advice = "Renew the certificate before it expires."
    yield new_finding(
        "certificate-expiring",
        f"{case.phone}: expiring within {case.expiry_days} days: {names}",
        advice,
        certificates=[cert.sha256 for cert in expiring],
        not_after=soonest.not_after.isoformat(),
    )


def _client_chain(case: _Case) -> tuple[CertificateReport, ...]:
    return (case.client_leaf,) if case.client_leaf else ()


def _alert_rules(case: _Case, handshake: Handshake) -> Iterator[Finding]:
    rejection = case.rejection
    status = case.validation.status
    if (
        rejection is None
        and case.server_alert is None
        and handshake.outcome == "established"
        and status in ("untrusted", "invalid")
    ):
        yield new_finding(
            "verdict-disagrees-with-server",
            f"{case.phone}: the server accepted a certificate that capana calls {status} "
            f"against {case.store_name}",
            f"The trust store given to capana is not the server's: export {case.server_trust} "
            "from this server and run again.",
            server_outcome=handshake.outcome,
        )
    if rejection is None:
        return
    if status == "trusted":
        yield new_finding(
            "verdict-disagrees-with-server",
            f"{case.phone}: capana trusts the certificate against {case.store_name}, but the "
            f"server answered {rejection}",
            "The trust store given to capana is not the server's, or the server was not "
            f"restarted after a trust change: export {case.server_trust} from this server and "
            "compare.",
            server_alert=rejection,
        )
    elif status == "not_checked" and handshake.client_cert_status == "present":
        yield new_finding(
            "server-rejected-certificate",
            f"{case.phone}: the server refused {case.who}'s certificate ({rejection})",
            f"Run capana with --trust pointing at an export of {case.server_trust} to see which "
            "CA is missing; unknown_ca means the issuer is not in the server's trust store.",
            server_alert=rejection,
        )


def _negotiation_rules(case: _Case, handshake: Handshake) -> Iterator[Finding]:
    """The server ended the handshake before the client sent a certificate."""
    alert = case.server_alert
    failed_eap = (
        handshake.transport in ("eapol", "radius")
        and handshake.outcome == "rejected"
        and handshake.client_cert_status not in ("present", "absent")
    )
    if handshake.client_cert_status in ("present", "absent") or alert in CERTIFICATE_ALERTS:
        return
    if alert is None and not failed_eap:
        return
    hello = handshake.client_hello
    if hello is None:
        offered = f"{case.who}'s ClientHello is not in the capture"
    else:
        suites = ", ".join(hello.cipher_suites[:6]) + (
            f" +{len(hello.cipher_suites) - 6} more" if len(hello.cipher_suites) > 6 else ""
        )
        offered = (
            f"{case.who} offered {', '.join(hello.versions) or '?'} with {suites or 'no suite'}"
        )
    chosen = (
        f"the server chose {handshake.tls_version} {handshake.cipher_suite or ''}".rstrip()
        if handshake.tls_version
        else "the server chose nothing (no ServerHello)"
    )
    ended = alert or ("EAP-Failure" if handshake.transport == "eapol" else "Access-Reject")
    yield new_finding(
        "tls-negotiation-failed",
        f"{case.phone}: the server ended the handshake with {ended} before {case.who} sent a "
        f"certificate: {offered}; {chosen}",
        TLS_SETTINGS_ADVICE.get(
            case.server or "",
            "Compare the TLS versions and cipher suites the server accepts with those offered.",
        ),
        server_alert=ended,
        offered_versions=list(hello.versions) if hello else None,
        offered_cipher_suites=list(hello.cipher_suites) if hello else None,
        server_version=handshake.tls_version,
        server_cipher_suite=handshake.cipher_suite,
    )


def _cleartext_rules(case: _Case, handshake: Handshake) -> Iterator[Finding]:
    if not handshake.cleartext:
        return
    protocol = handshake.service.upper()
    also = (
        f"; it also opened TLS to CUCM: it fell back to {protocol} in clear"
        if case.tried_tls
        else ""
    )
    finding = new_finding(
        "registered-non-secure",
        f"{case.phone}: cleartext {protocol} to {handshake.server} (a non-secure device "
        f"profile){also}",
        "If the phone should be secure, give it a secure device profile (authenticated or "
        "encrypted) and check that it holds a certificate the cluster trusts (LSC or MIC).",
        service=handshake.service,
    )
    yield replace(finding, severity="warning") if case.tried_tls else finding


def _request_rules(case: _Case, handshake: Handshake) -> Iterator[Finding]:
    status = handshake.client_cert_status
    if handshake.cleartext:
        return
    if status == "absent":
        advice = (
            "The phone has neither LSC nor a usable MIC for this service: check the phone's "
            "security settings and install an LSC (Certificate Operation = Install/Upgrade)."
            if case.is_phone
            else "The client holds no certificate for this server: configure one."
        )
        yield new_finding(
            "no-client-certificate",
            f"{case.phone}: the server asked for a certificate and {case.who} sent none",
            advice,
        )
    elif (
        status == "not_requested"
        and handshake.service in PHONE_SERVICES
        and handshake.capf is None  # the phone proves itself inside the CAPF protocol
    ):
        yield new_finding(
            "certificate-not-requested",
            f"{case.phone}: the server did not ask for a certificate on {handshake.service}",
            "Nothing to check on the phone's side here; a secure (authenticated/encrypted) "
            "device profile makes CallManager ask for the phone's certificate.",
        )
    elif status == "encrypted":
        failed = handshake.decryption == "failed"
        yield new_finding(
            "tls13-certificate-encrypted",
            f"{case.phone}: TLS 1.3, {case.who}'s certificate is encrypted in the capture"
            + (" and the key log given did not decrypt it" if failed else ""),
            "Run again with the session keys (capana scan --keylog FILE, an NSS key log; keys "
            "in a pcapng are used too), or note that phones in Authenticated mode stay below "
            "TLS 1.3.",
            decryption=handshake.decryption,
        )
    if case.issuer_requested is False and case.leaf is not None:
        issuer_cn = case.leaf.issuer_label
        fix = (
            "otherwise give the phone an LSC from a CAPF the request lists"
            if case.kind == "LSC"
            else "otherwise give it a certificate from a CA the request lists"
        )
        yield new_finding(
            "issuer-not-requested",
            f"{case.phone}: the server's CertificateRequest does not list '{issuer_cn}', the "
            f"issuer of {case.who}'s certificate",
            f"The server's trust store lacks '{issuer_cn}'. If it is yours, "
            + case.add_to_server_trust(f"'{issuer_cn}'")
            + f"; {fix}.",
            requested_ca_names=list(case.requested_ca_names),
        )


def _certificate_quality_rules(case: _Case) -> Iterator[Finding]:
    leaf = case.leaf
    if leaf is None:
        return
    if leaf.signature_hash == "sha1" or ReasonCode.WEAK_SIGNATURE in case.validation.codes:
        advice = {
            "MIC": "CUCM accepts SHA-1 MICs; plan an LSC signed with SHA-256 for the long run.",
            "LSC": "Reissue the LSC from a CAPF (or CA) that signs with SHA-256.",
        }.get(case.kind or "", "Reissue the certificate signed with SHA-256.")
        yield new_finding(
            "weak-signature",
            f"{case.phone}: SHA-1 signature on the certificate or its CA",
            advice,
        )
    if leaf.public_key.startswith("RSA ") and int(leaf.public_key.split()[1]) < MIN_RSA_BITS:
        advice = {
            "LSC": "Reissue the LSC with a key size of 2048 bits or more (CAPF settings: Key "
            "Size).",
            "MIC": "A MIC's key is set at the factory: install an LSC with a 2048-bit key.",
        }.get(case.kind or "", "Reissue the certificate with an RSA key of 2048 bits or more.")
        yield new_finding("short-rsa-key", f"{case.phone}: {leaf.public_key} key", advice)
    if case.kind == "MIC" and not (leaf.extended_key_usage and leaf.subject_alt_names):
        yield new_finding(
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
        yield new_finding(
            "capture-gap",
            f"{case.phone}: {handshake.gaps} stretch(es) of TCP data missing from the capture",
            "Capture again closer to the phone (SPAN drops packets under load) so the verdict "
            "rests on the whole handshake.",
            gaps=handshake.gaps,
        )
    if handshake.client_cert_status == "truncated":
        yield new_finding(
            "capture-truncated",
            f"{case.phone}: the capture kept only the start of each packet (snaplen): the "
            "phone's certificate is not in it",
            "Capture again with whole packets: on CUCM, 'utils network capture eth0 file NAME "
            "count 100000 size all' (by default it keeps 128 bytes of each packet); with "
            "tcpdump, '-s 0'; from a switch, a SPAN or ERSPAN session; or the phone's own 'Span "
            "to PC Port' (Phone Configuration) with a PC capturing in full.",
        )
    elif ProblemCode.SNAPLEN in handshake.problem_codes:
        yield new_finding(
            "capture-snaplen",
            f"{case.phone}: packets were cut short by the capture's snaplen",
            "Capture with the full packet length (tcpdump -s 0).",
        )
    if handshake.outcome == "incomplete" and not handshake.gaps:
        yield new_finding(
            "handshake-incomplete",
            f"{case.phone}: the capture ends (or the connection closes) before the handshake "
            "finishes",
            "Capture the whole phone reboot, from power-on until registration.",
        )


def _unexplained_rejection(
    case: _Case, handshake: Handshake, found: list[Finding]
) -> list[Finding]:
    """A refused handshake always gets an error or a warning: one that no rule explained."""
    if handshake.outcome != "rejected" or any(f.severity != "info" for f in found):
        return []
    fatal = next((a for a in handshake.alerts if a.level in ("fatal", "encrypted")), None)
    if fatal is not None and fatal.sender == "client":
        return [
            new_finding(
                CATCH_ALL,
                f"{case.phone}: {case.who} ended the handshake "
                f"({fatal.description or 'encrypted alert'}): it did not accept the server",
                "The phone refuses the server's certificate: check the phone's trust list "
                "(Settings > Security > Trust List); after regenerating CallManager, TVS or "
                "ITLRecovery certificates reset it (utils itl reset) or from the phone's menu."
                if case.is_phone
                else "The client refuses the server's certificate or parameters: check its "
                "trust settings.",
                client_alert=fatal.description,
            )
        ]
    what = fatal.description if fatal and fatal.description else "an encrypted alert"
    if fatal is None:
        what = "EAP-Failure" if handshake.transport == "eapol" else "a rejection"
    return [
        new_finding(
            CATCH_ALL,
            f"{case.phone}: the server refused the handshake ({what})",
            "Look at the server's logs for this connection (the frames are listed in the "
            "report); with TLS 1.3 run again with --keylog to read the alert.",
            server_alert=what,
        )
    ]


# The rules that need no handshake (certificate_findings runs them alone), then the others.
def _capf_rules(case: _Case, handshake: Handshake) -> Iterator[Finding]:
    """The CAPF turned the phone away (or the operation failed): why, and what to set in CUCM."""
    report = case.capf
    if report is None or not report.session.refused:
        return
    session = report.session
    reason = session.reason
    why = "no reason given"
    if reason is not None:
        why = f"reason {reason.code} '{reason.text}'" + (f": {reason.info}" if reason.info else "")
    device = session.device or case.phone
    asked = f"the {session.operation}" if session.operation not in (None, "none") else "its request"
    yield new_finding(
        "capf-request-refused",
        f"{device}: the CAPF refused {asked} ({why})" + _capf_credential(report),
        _capf_advice(report, device),
        device=session.device,
        operation=session.operation,
        auth=session.auth,
        result=session.result,
        reason_code=reason.code if reason else None,
        reason=reason.text if reason else None,
        reason_info=reason.info if reason else None,
    )


_CAPF_PAGE = (
    "Cisco Unified CM Administration > Device > Phone > {device} > Certificate Authority Proxy "
    "Function (CAPF) Information"
)


def _capf_credential(report: CapfReport) -> str:
    """What the phone authenticated with, when it was a certificate."""
    presented = report.presented
    if presented is None or report.session.auth not in ("lsc", "mic"):
        return ""
    issuer = presented.issuer_label or "an unreadable issuer"
    verdict = report.presented_validation.status
    checked = f", {verdict} against {store_label(report.presented_validation.store)}"
    return f"; it authenticated with its {presented.kind} issued by '{issuer}'" + (
        checked if verdict != "not_checked" else ""
    )


def _capf_advice(report: CapfReport, device: str) -> str:
    """The fix in CUCM's words, by the reason the CAPF gave and how the phone authenticated."""
    session = report.session
    page = _CAPF_PAGE.format(device=device)
    code = session.reason.code if session.reason else None
    if session.result == "no_operation":
        return (
            f"No certificate operation was pending for {device}: in {page} set Certificate "
            "Operation (Install/Upgrade, Delete or Troubleshoot) with an Operation Completes By "
            "date in the future, Save and Apply Config, then reset the phone."
        )
    if code == 9:
        return (
            f"The CAPF does not know '{device}': check that the phone is added in CUCM under that "
            f"device name (SEP and its MAC) and that Certificate Operation is set in {page}."
        )
    if session.auth == "lsc":
        presented = report.presented
        issuer = presented.issuer_label if presented and presented.issuer_label else "its CAPF"
        other_key = {ReasonCode.SAME_NAME_OTHER_KEY, ReasonCode.SIGNATURE_INVALID}
        if other_key & report.presented_validation.codes:
            missing = f"CAPF-trust holds a '{issuer}' with another key: the CAPF was regenerated"
        else:
            missing = (
                f"CAPF-trust lacks '{issuer}', typically after the CAPF certificate was "
                "regenerated (same name, new key) or when the phone came from another cluster"
            )
        return (
            f"The CAPF refused the phone's LSC ('invalid LSC'): {missing}. Put the old CAPF "
            "certificate back in CAPF-trust (and restart the Cisco Certificate Authority Proxy "
            "Function service) until every phone has a new LSC, or set the Authentication Mode "
            f"in {page} to By Null String, By Authentication String or By Existing Certificate "
            "(Precedence to MIC)."
        )
    if session.auth == "mic":
        return (
            "The CAPF refused the phone's MIC: CAPF-trust must hold the Cisco manufacturing CAs "
            "(CUCM's default CA list, 'show cert default-ca-list'); restore them, or set the "
            f"Authentication Mode in {page} to By Null String or By Authentication String."
        )
    if session.auth == "password":
        return (
            "The authentication string the phone sent is not the one set in CUCM: enter it again "
            f"on the phone (Settings > Security > LSC), or set the Authentication Mode in {page} "
            "to By Null String."
        )
    return (
        f"Check {page}: Certificate Operation, Authentication Mode, Key Size / Key Order; the "
        "CAPF service's trace (RTMT, Cisco Certificate Authority Proxy Function) says why."
    )


# What CUCM's answer to a REGISTER means, and what to check.
_SIP_ADVICE = {
    401: "The phone's digest credentials were refused: set the Digest User on the phone's page "
    "and that end user's digest credentials, or turn digest authentication off in the phone's "
    "security profile.",
    403: "CUCM forbade the registration: check that the device exists under this name with this "
    "line, that its Phone Security Profile's transport (TLS, TCP) and type match what the phone "
    "uses, and the Cisco CallManager trace for the reason.",
    404: "CUCM does not know this line on this device: check the directory number (and its "
    "partition) on the phone's page, Save and Apply Config.",
    407: "The phone's digest credentials were refused: set the Digest User on the phone's page "
    "and that end user's digest credentials.",
    503: "This CallManager would not take the registration: check that the node is in the "
    "CallManager Group of the phone's Device Pool and that the Cisco CallManager service runs.",
}


def _registration_rules(case: _Case, handshake: Handshake) -> Iterator[Finding]:
    """CUCM refused the registration itself: the certificate (if any) was not the problem."""
    registration = handshake.registration
    if registration is None or registration.result != "rejected":
        return
    protocol = registration.protocol.upper()
    status = registration.status or "a rejection"
    said = f"{status}: {registration.reason}" if registration.reason else status
    line = f" for line {registration.line}" if registration.line else ""
    if case.validation.status == "trusted":
        context = (
            f"; the certificate was not the problem: {case.kind} trusted by {case.store_name}, "
            "and the TLS handshake completed"
        )
    elif handshake.client_cert_status == "present" and handshake.outcome == "established":
        context = "; the certificate was not the problem: the server accepted it in the handshake"
    elif handshake.cleartext:
        context = " (in clear: no certificate involved)"
    else:
        context = "; the TLS handshake completed without the phone's certificate"
    code = int(status.split()[0]) if status[:3].isdigit() else None
    advice = _SIP_ADVICE.get(code or 0) if registration.protocol == "sip" else None
    if advice is None:
        advice = (
            "CUCM refused the registration itself: check that the device is added under this "
            "name, its Phone Security Profile (device security mode, transport) and its lines; "
            "the Cisco CallManager trace (RTMT) gives the reason."
        )
    yield new_finding(
        "registration-rejected",
        f"{case.phone}: {protocol} registration rejected{line} ({said}){context}",
        advice,
        protocol=registration.protocol,
        status=registration.status,
        line=registration.line,
        reason=registration.reason,
        validation=case.validation.status,
    )


_CERTIFICATE_RULES: tuple[Callable[[_Case], Iterator[Finding]], ...] = (
    _trust_rules,
    _expiry_rules,
    _certificate_quality_rules,
)
_HANDSHAKE_RULES: tuple[Callable[[_Case, Handshake], Iterator[Finding]], ...] = (
    _alert_rules,
    _negotiation_rules,
    _cleartext_rules,
    _request_rules,
    _capture_rules,
    _capf_rules,
    _registration_rules,
)


def _same_name_other_key(validation: Validation, store: TrustStore | None) -> list[Certificate]:
    """Store certificates named as an issuer on the path whose key did not sign (by validation)."""
    if store is None:
        return []
    about = set(validation.about(ReasonCode.SAME_NAME_OTHER_KEY, ReasonCode.SIGNATURE_INVALID))
    return [cert for cert in store.certificates if cert.sha256 in about]
