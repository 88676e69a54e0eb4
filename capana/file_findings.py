"""Findings on the files a phone fetched: what is wrong with its trust lists and configuration,
alone and against the TLS handshakes the same phone made in the same capture, and what an
administrator does about it. Codes are in :data:`capana.findings.CATALOGUE`.

A finding about the phone's trust as a whole (CallManager's certificate, the LSC's CAPF) is
given once, on the last trust list the phone downloaded: the one it holds when it registers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from capana.certificates import name_key
from capana.domain import (
    CALLMANAGER_ROLES,
    CALLMANAGER_TLS_SERVICES,
    CAPF_CN_PATTERN,
    CLEARTEXT_SERVICE_BY_PORT,
    MAX_TRUST_LIST_SIZE,
)
from capana.findings import CATCH_ALL, new_finding
from capana.model import (
    SEVERITY_RANK,
    Certificate,
    FileReport,
    Finding,
    HandshakeReport,
)
from capana.signatures import signed_by
from capana.trustfiles import cert_hash_matches, same_serial

# What the certificate of each role is called on CUCM (what an administrator regenerates).
_CERTIFICATE_OF_ROLE = {
    "SAST": "ITLRecovery (or the SAST token's)",
    "CCM": "CallManager",
    "CCM+TFTP": "CallManager",
    "TFTP": "CallManager (TFTP)",
    "CAPF": "CAPF",
    "TVS": "TVS",
    "APP-SERVER": "the application server's",
}
_SECURE_MODES = {2: "authenticated", 3: "encrypted"}
_RESET_ITL = (
    "If phones then refuse the new list ('Trust List Update Failed'), reset their trust list "
    "from the phone (88xx: Settings > Admin Settings > Reset Settings > Security Settings) or "
    "with 'utils itl reset localkey' (or 'remotekey') on the publisher, and reset the phones."
)


@dataclass(frozen=True)
class Phone:
    """One phone of a capture: the files it fetched and the handshakes it made.

    ``trust_lists``: its CTLs and ITLs whose signature did not fail, in the order fetched.
    """

    name: str  # the device, else the client address
    handshakes: tuple[HandshakeReport, ...]
    trust_lists: tuple[FileReport, ...]

    @property
    def holds(self) -> FileReport | None:
        """The trust list the phone registers with: the last one it fetched."""
        return self.trust_lists[-1] if self.trust_lists else None

    @property
    def list_names(self) -> str:
        return ", ".join(dict.fromkeys(r.name for r in self.trust_lists))

    def records(self, roles: frozenset[str]) -> list[Certificate]:
        """The parsed certificates of its trust lists' records of these roles, each once."""
        found = {
            entry.certificate.sha256: entry.certificate.parsed
            for report in self.trust_lists
            for entry in report.records
            if entry.role in roles and entry.certificate and entry.certificate.parsed
        }
        return [cert for cert in found.values() if cert is not None]

    def presented(self) -> list[Certificate]:
        """The leaf certificates it presented, each once, in order."""
        leaves = {
            leaf.sha256: leaf.parsed
            for record in self.handshakes
            if (leaf := record.client_leaf) is not None
        }
        return [cert for cert in leaves.values() if cert is not None]


@dataclass(frozen=True)
class _Case:
    report: FileReport
    phone: Phone
    moment: datetime


def diagnose_file(report: FileReport, phone: Phone, moment: datetime) -> tuple[Finding, ...]:
    """Every finding on one file of ``phone`` fetched at ``moment``, most severe first."""
    case = _Case(report, phone, moment)
    found = [item for rule in _RULES for item in rule(case)]
    return tuple(sorted(found, key=lambda f: -SEVERITY_RANK[f.severity]))


# Trust lists --------------------------------------------------------------------------------


def _trust_list_rules(case: _Case) -> Iterator[Finding]:
    report, phone = case.report, case.phone.name
    if report.kind not in ("ctl", "itl") or report.file is None:
        return
    header, check = report.file.header, report.signature
    if check is not None and (
        check.status == "invalid" or check.reason in ("signer-not-found", "signer-unparsed")
    ):
        why = (
            "its signature does not verify with its signer's certificate"
            if check.status == "invalid"
            else f"none of its SAST records is the signer it names (serial "
            f"{header.signer_serial if header else '?'})"
        )
        yield new_finding(
            "trust-list-signature-invalid",
            f"{phone}: {report.name}: {why}; the phone refuses it and keeps the list it had",
            "Make sure the phones get the file CUCM built (no copy edited or corrupted on the "
            "way): restart the Cisco TFTP service so the ITL is rebuilt and re-signed (in mixed "
            "mode run 'utils ctl update CTLFile' for the CTL), then reset the phone. " + _RESET_ITL,
            signer=header.signer_name if header else None,
            signer_serial=header.signer_serial if header else None,
            reason=check.reason,
        )
    if report.transfer.size > MAX_TRUST_LIST_SIZE:
        yield new_finding(
            "trust-list-too-large",
            f"{phone}: {report.name} is {report.transfer.size} bytes, over the 64 KB phones "
            f"accept ({len(report.records)} records)",
            "Remove certificates that should not be in it (TVS and CallManager certificates of "
            "nodes no longer in the cluster, duplicates in CallManager-trust and "
            "Phone-SAST-trust), restart the Cisco TFTP service so the list is rebuilt, and check "
            "its size with 'show itl' before resetting the phones.",
            size=report.transfer.size,
            limit=MAX_TRUST_LIST_SIZE,
        )
    expired = [
        (entry.role, cert)
        for entry in report.records
        if entry.certificate and (cert := entry.certificate.parsed) and cert.not_after < case.moment
    ]
    if expired:
        which = "; ".join(f"{role} {cert.subject} (until {_day(cert)})" for role, cert in expired)
        names = ", ".join(dict.fromkeys(_CERTIFICATE_OF_ROLE.get(r, r) for r, _ in expired))
        yield new_finding(
            "trust-list-certificate-expired",
            f"{phone}: {report.name} holds certificates expired when it was fetched: {which}",
            f"Regenerate the {names} certificate on CUCM (Cisco Unified OS Administration > "
            "Security > Certificate Management), restart the services that use it (Cisco TFTP "
            "rebuilds the ITL; Cisco CallManager, TVS or CAPF as the role says) and reset the "
            "phones. " + _RESET_ITL,
            certificates=[cert.sha256 for _, cert in expired],
        )


def _callmanager_rules(case: _Case) -> Iterator[Finding]:
    """CallManager's certificate against the phone's CCM records (on the list it holds)."""
    phone = case.phone
    if case.report is not phone.holds:
        return
    listed = phone.records(CALLMANAGER_ROLES)
    if not listed:
        return
    shas = {cert.sha256 for cert in listed}
    names = {name_key(cert.subject_der) for cert in listed}
    seen: set[str] = set()
    for record in phone.handshakes:
        handshake = record.handshake
        leaf = record.server_chain[0].parsed if record.server_chain else None
        if handshake.service not in CALLMANAGER_TLS_SERVICES or leaf is None:
            continue
        if leaf.sha256 in shas or leaf.sha256 in seen:
            continue
        seen.add(leaf.sha256)
        regenerated = name_key(leaf.subject_der) in names
        refused = next(
            (
                a.description
                for a in handshake.alerts
                if a.sender == "client" and a.level == "fatal"
            ),
            None,
        )
        yield new_finding(
            "server-certificate-not-in-trust-list",
            f"{phone.name}: CallManager {handshake.server} ({handshake.service}) presented "
            f"'{leaf.subject}' (sha256 {leaf.sha256[:16]}…), which is in none of the CallManager "
            f"records of {phone.list_names}"
            + (
                ", which hold another certificate of that name: CallManager's certificate was "
                "regenerated after the list was built"
                if regenerated
                else ""
            )
            + (f"; the phone refused it ({refused})" if refused else ""),
            "Restart the Cisco TFTP service on every TFTP node so the ITL is rebuilt with "
            "CallManager's current certificate, then reset the phone; in mixed mode first run "
            "'utils ctl update CTLFile'. " + _RESET_ITL,
            server=handshake.server,
            certificate=leaf.sha256,
            trust_list_certificates=sorted(shas),
            phone_alert=refused,
        )


def _capf_rules(case: _Case) -> Iterator[Finding]:
    """The phone's LSC against the CAPF record of the list it holds, by signature."""
    phone = case.phone
    if case.report is not phone.holds:
        return
    capfs = phone.records(frozenset({"CAPF"}))
    if not capfs:
        return
    names = {name_key(cert.subject_der) for cert in capfs}
    for lsc in phone.presented():
        if not (lsc.issuer_cn and CAPF_CN_PATTERN.fullmatch(lsc.issuer_cn)):
            continue  # a MIC, or an LSC from an online/offline CA: CAPF did not sign it
        if any(signed_by(lsc, capf) is None for capf in capfs):
            continue
        regenerated = name_key(lsc.issuer_der) in names
        cluster = ", ".join(sorted({cert.subject_cn or cert.subject for cert in capfs}))
        yield new_finding(
            "lsc-issuer-not-cluster-capf",
            f"{phone.name}: its LSC was issued by '{lsc.issuer_cn}', but not signed by the "
            f"CAPF certificate of {phone.list_names} ({cluster})"
            + (
                ": same name, another key, the CAPF certificate was regenerated after the LSC "
                "was issued"
                if regenerated
                else ": the LSC comes from another cluster's CAPF"
            ),
            (
                "Reissue the LSC from the current CAPF (Certificate Operation = Install/Upgrade; "
                "authenticate by MIC or an authentication string, the old LSC is refused), and "
                "keep the old CAPF certificate in CallManager-trust and CAPF-trust until every "
                "phone has a new LSC."
                if regenerated
                else "Register the phone with a non-secure profile, delete the old LSC "
                "(Certificate Operation = Delete), install an LSC from this cluster's CAPF, then "
                "re-apply the secure profile."
            ),
            certificate=lsc.sha256,
            issuer=lsc.issuer,
            capf_certificates=[cert.sha256 for cert in capfs],
        )


# Configurations -----------------------------------------------------------------------------


def _config_signature_rules(case: _Case) -> Iterator[Finding]:
    report, phone = case.report, case.phone
    check = report.signature
    if report.kind not in ("config-signed", "config-encrypted") or check is None:
        return
    header = report.file.header if report.file else None
    signer = header.signer_name if header else None
    if check.status == "invalid":
        yield new_finding(
            "config-signature-invalid",
            f"{phone.name}: the signature of {report.name} does not verify with the "
            f"certificate of its signer '{signer}' in {phone.list_names}; the phone ignores it",
            "Restart the Cisco TFTP service so it rebuilds and re-signs the configuration "
            "files, then reset the phone. If the TFTP (CallManager) certificate was regenerated, "
            "the phone's ITL must list the new one first. " + _RESET_ITL,
            signer=signer,
        )
        return
    if check.reason != "signer-not-found":
        return  # verified, or nothing to judge the signer by (no trust list, an odd digest)
    serial = header.signer_serial if header else None
    role = _role_of(phone, serial)
    yield new_finding(
        "config-signer-not-in-trust-list",
        f"{phone.name}: {report.name} is signed by '{signer}' (serial {serial}), "
        + (f"a {role} record" if role else "which is not a record")
        + f" of {phone.list_names}, not a TFTP or CCM+TFTP one: the phone cannot verify it "
        "without asking TVS",
        "The TFTP service signs with a certificate the phone's trust list does not give the "
        "TFTP role: restart the Cisco TFTP service (after any CallManager certificate change) "
        "so the ITL and the signed files agree, then reset the phone. " + _RESET_ITL,
        signer=signer,
        signer_serial=serial,
        role=role,
    )


def _secure_profile_rules(case: _Case) -> Iterator[Finding]:
    """A secure profile in the configuration, and no TLS to CallManager from the phone."""
    report, phone = case.report, case.phone
    config = report.config
    if report.kind not in ("config", "config-signed") or config is None:
        return
    mode = _SECURE_MODES.get(config.device_security_mode or 0)
    services = {record.handshake.service for record in phone.handshakes}
    if mode is None or services & CALLMANAGER_TLS_SERVICES:
        return
    clear = sorted(services & set(CLEARTEXT_SERVICE_BY_PORT.values()))
    yield new_finding(
        "secure-profile-not-used",
        f"{phone.name}: {report.name} sets deviceSecurityMode {config.device_security_mode} "
        f"({mode}), but the phone "
        + (f"registered in the clear ({', '.join(clear)})" if clear else "opened no TLS")
        + " to CallManager (SCCP-TLS 2443, SIP-TLS 5061) in this capture",
        "Check that the phone accepted its configuration (its ITL/CTL lists the TFTP signer), "
        "that it holds an LSC or a MIC CallManager trusts, and for a SIP phone that the "
        "security profile's transport is TLS; re-apply the Phone Security Profile (Device > "
        "Phone > Device Security Profile, then Apply Config) and reset the phone. If the "
        "capture ended before the phone registered, capture the whole boot.",
        device_security_mode=config.device_security_mode,
        services=sorted(services),
    )


def _encrypted_config_rules(case: _Case) -> Iterator[Finding]:
    """The .enc.sgn's certHash (from its companion .cnf.xml.sgn) against what the phone sent."""
    report, phone = case.report, case.phone
    config = report.config
    if report.kind != "config-encrypted" or config is None or not config.cert_hash:
        return
    presented = phone.presented()
    if not presented or any(cert_hash_matches(config.cert_hash, c.der) for c in presented):
        return
    yield new_finding(
        "encrypted-config-for-other-certificate",
        f"{phone.name}: {report.name} is encrypted to the certificate with hash "
        f"{config.cert_hash}, not to the one the phone presented ("
        + ", ".join(f"{c.subject_cn or c.subject} from {c.issuer_label}" for c in presented)
        + "): the phone cannot decrypt its configuration",
        "The phone's LSC changed since CUCM encrypted the file (reissued, deleted, or the "
        "phone was reset to its MIC): Apply Config on the phone so CUCM re-encrypts "
        "SEP<MAC>.cnf.xml.enc.sgn to its current LSC (restart Cisco TFTP if it keeps serving "
        "the old file); a phone without an LSC needs one first (Certificate Operation = "
        "Install/Upgrade), as configuration files are encrypted to the LSC.",
        cert_hash=config.cert_hash,
        presented=[c.sha256 for c in presented],
    )


_RULES: tuple[Callable[[_Case], Iterator[Finding]], ...] = (
    _trust_list_rules,
    _callmanager_rules,
    _capf_rules,
    _config_signature_rules,
    _secure_profile_rules,
    _encrypted_config_rules,
)


def _role_of(phone: Phone, serial: str | None) -> str | None:
    """The role of the record whose certificate has this serial in the phone's trust lists."""
    return next(
        (
            entry.role
            for report in phone.trust_lists
            for entry in report.records
            if entry.certificate
            and entry.certificate.parsed
            and serial is not None
            and same_serial(entry.certificate.parsed.serial, serial)
        ),
        None,
    )


def _day(cert: Certificate) -> str:
    return cert.not_after.date().isoformat()


def without_explained_rejections(
    handshakes: Sequence[HandshakeReport], files: Sequence[FileReport]
) -> tuple[HandshakeReport, ...]:
    """The handshakes, less the catch-all ``handshake-rejected`` where a file finding says why
    the phone refused the server (CallManager's certificate is not in its trust list)."""
    explained = {
        (finding.evidence.get("server"), finding.evidence.get("certificate"))
        for file in files
        for finding in file.findings
        if finding.code == "server-certificate-not-in-trust-list"
    }
    if not explained:
        return tuple(handshakes)
    return tuple(
        replace(record, findings=tuple(f for f in record.findings if f.code != CATCH_ALL))
        if (record.handshake.server, record.server_chain[0].sha256 if record.server_chain else None)
        in explained
        else record
        for record in handshakes
    )
