"""Judging one handshake: parse and classify its certificates, validate both chains at capture
time against the stores, and diagnose. Facts in, a :class:`HandshakeReport` out."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timezone

from capana.certificates import name_from_der, name_key, parse_certificate
from capana.classify import classify
from capana.findings import DEFAULT_EXPIRY_DAYS, diagnose
from capana.model import (
    AnyCertificate,
    CapfReport,
    Certificate,
    CertificateReport,
    Classification,
    Handshake,
    HandshakeReport,
    Problem,
    ProblemCode,
    TvsReport,
    Validation,
)
from capana.truststore import TrustStore, store_for
from capana.validation import validate_chain


def judge(
    handshake: Handshake,
    stores: Mapping[str | None, TrustStore],
    capture_start: datetime | None,
    *,
    expiry_days: int = DEFAULT_EXPIRY_DAYS,
    tried_tls: bool = False,
) -> HandshakeReport:
    """Classify the certificates of one handshake and validate both chains at capture time.

    ``expiry_days``: how soon after the capture an expiry is worth a warning; ``tried_tls``:
    the client also opened TLS to a phone service in this capture (see ``diagnose``).
    """
    store = store_for(handshake.service, handshake.server_port, stores)
    moment = handshake.start or capture_start or datetime.now(timezone.utc)
    all_stores = tuple(stores.values())
    client_chain = tuple(certificate_report(der, all_stores) for der in handshake.client_chain)
    server_chain = tuple(certificate_report(der, all_stores) for der in handshake.server_chain)
    validation = validate_chain([c.certificate for c in client_chain], store, moment, role="client")
    names, unreadable = _requested_names(handshake.requested_ca_names)
    if unreadable:
        handshake = dataclasses.replace(handshake, problems=handshake.problems + unreadable)
    requested = issuer_requested(handshake, client_chain, validation, store)
    capf = _capf_report(handshake, store, all_stores, handshake.end or moment)
    findings = diagnose(
        handshake,
        validation,
        client_leaf=client_chain[0] if client_chain else None,
        requested_ca_names=names,
        issuer_requested=requested,
        store=store,
        moment=moment,
        expiry_days=expiry_days,
        tried_tls=tried_tls,
        capf=capf,
    )
    return HandshakeReport(
        handshake=handshake,
        client_chain=client_chain,
        server_chain=server_chain,
        requested_ca_names=names,
        validation=validation,
        server_validation=validate_chain(
            [c.certificate for c in server_chain], stores.get(None), moment, role="server"
        ),
        issuer_requested=requested,
        findings=findings,
        capf=capf,
        tvs=_tvs_report(handshake, all_stores),
    )


def certificate_report(der: bytes, stores: tuple[TrustStore, ...] = ()) -> CertificateReport:
    """A certificate as sent, parsed and classified (an unparsed one is "other")."""
    return classified(parse_certificate(der), stores)


def classified(cert: AnyCertificate, stores: tuple[TrustStore, ...] = ()) -> CertificateReport:
    """A parsed (or unparseable) certificate with what it claims to be."""
    if isinstance(cert, Certificate):
        return CertificateReport(cert, classify(cert, stores))
    return CertificateReport(cert, Classification("other"))


def _capf_report(
    handshake: Handshake,
    store: TrustStore | None,
    stores: tuple[TrustStore, ...],
    moment: datetime,
) -> CapfReport | None:
    """The CAPF session's certificates judged: the LSC it issued (what the phone presents
    next) and the one the phone authenticated with, against the CAPF store (else the default),
    when the session ended (a freshly issued LSC is valid from that second on)."""
    session = handshake.capf
    if session is None:
        return None
    issued, presented = (
        certificate_report(der, stores) if der else None
        for der in (session.issued_certificate, session.presented_certificate)
    )
    return CapfReport(
        session=session,
        issued=issued,
        presented=presented,
        issued_validation=_validate(issued, store, moment),
        presented_validation=_validate(presented, store, moment),
    )


def _validate(
    report: CertificateReport | None, store: TrustStore | None, moment: datetime
) -> Validation:
    chain = [report.certificate] if report is not None else []
    return validate_chain(chain, store, moment, role="client")


def _tvs_report(handshake: Handshake, stores: tuple[TrustStore, ...]) -> TvsReport | None:
    """The certificates the phone asked TVS about, parsed and classified."""
    session = handshake.tvs
    if session is None:
        return None
    certificates = tuple(
        certificate_report(query.certificate, stores) if query.certificate else None
        for query in session.queries
    )
    return TvsReport(session=session, certificates=certificates)


def issuer_requested(
    handshake: Handshake,
    chain: tuple[CertificateReport, ...],
    validation: Validation,
    store: TrustStore | None,
) -> bool | None:
    """Does the server's CertificateRequest name a CA of the phone's chain? None: can't tell.

    Any CA will do: the leaf's issuer, a CA the phone sent, one on the path found, or the issuer
    of its anchor (a server that names only the root still accepts the chain below it).
    """
    # An empty list in a CertificateRequest means the server names no CA: any may do.
    if not handshake.requested_ca_names or not chain or chain[0].parsed is None:
        return None
    requested = {name_key(der) for der in handshake.requested_ca_names}
    sent = [c.parsed for c in chain if c.parsed is not None]
    on_path = set(validation.path[1:])
    anchors = store.certificates if store else ()
    names = {name_key(cert.issuer_der) for cert in sent}
    for cert in (*sent, *anchors):
        if cert.sha256 in on_path:
            names |= {name_key(cert.subject_der), name_key(cert.issuer_der)}
    return not names.isdisjoint(requested)


def _requested_names(
    ca_names: tuple[bytes, ...] | None,
) -> tuple[tuple[str, ...] | None, tuple[Problem, ...]]:
    """RFC 4514 text of the CertificateRequest's CA names; a hostile one loses none of the rest."""
    if ca_names is None:
        return None, ()
    names, problems = [], []
    for der in ca_names:
        try:
            names.append(name_from_der(der))
        except Exception as error:
            text = f"unreadable CA name in CertificateRequest: {error}"
            problems.append(Problem(ProblemCode.UNREADABLE_CA_NAME, text))
    return tuple(names), tuple(problems)
