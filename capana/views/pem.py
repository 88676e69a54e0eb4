"""Certificate extraction: every distinct certificate of the report as a PEM file."""

from __future__ import annotations

import base64
import re
import textwrap

from capana.model import CertificateReport, Report

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def certificate_files(report: Report) -> dict[str, str]:
    """``{file name: PEM text}``, named ``<device-or-cn>_<role>_<sha256[:12]>.pem``.

    The role is where the certificate first appeared: the phone's leaf by its kind (``lsc``,
    ``mic``, ``client``), the server's leaf ``server``, a chain certificate by its kind
    (``capf``, ``ca``, ``chain``), a trust list's record by the list and its role
    (``itl-sast``, ``ctl-ccm_tftp``). Unparsed certificates are written too.
    """
    placed = [
        (cert, role)
        for record in report.handshakes
        for chain, role_of in (
            (record.client_chain, _client_role),
            (record.server_chain, _server_role),
        )
        for cert, role in ((cert, role_of(cert, i)) for i, cert in enumerate(chain))
    ]
    placed += [
        (entry.certificate, _UNSAFE.sub("_", f"{file.kind}-{entry.role.lower()}"))
        for file in report.files
        for entry in file.records
        if entry.certificate is not None
    ]
    files: dict[str, str] = {}
    seen: set[str] = set()
    for cert, role in placed:
        if cert.sha256 not in seen:
            seen.add(cert.sha256)
            files[f"{_owner(cert)}_{role}_{cert.sha256[:12]}.pem"] = pem(cert.certificate.der)
    return files


def pem(der: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def _client_role(cert: CertificateReport, position: int) -> str:
    if position == 0:
        return cert.kind.lower() if cert.kind in ("LSC", "MIC") else "client"
    return _chain_role(cert)


def _server_role(cert: CertificateReport, position: int) -> str:
    return "server" if position == 0 else _chain_role(cert)


def _chain_role(cert: CertificateReport) -> str:
    return cert.kind.lower() if cert.kind in ("CAPF", "CA") else "chain"


def _owner(cert: CertificateReport) -> str:
    parsed = cert.parsed
    name = cert.classification.device or (parsed and parsed.subject_cn) or "unparsed"
    return _UNSAFE.sub("_", name).strip("_.")[:64] or "unnamed"
