"""The report model: every type a report holds, as plain frozen data.

Stages build these (facts from the wire, then verdicts); views, the notebook, the CLI and the
pytest plugin read them. Nothing here imports a stage or a view.
"""

from capana.model.certificates import (
    AnyCertificate,
    Certificate,
    CertificateReport,
    Classification,
    Kind,
    UnparsedCertificate,
)
from capana.model.checks import CertificateCheck, StoreVerdict
from capana.model.handshakes import (
    AlertLevel,
    AlertSeen,
    ClientCertStatus,
    ClientHelloFacts,
    Decryption,
    Frames,
    Handshake,
    HandshakeReport,
    Outcome,
    Problem,
    ProblemCode,
    Sender,
    Transport,
)
from capana.model.report import CaptureSummary, Device, Report
from capana.model.verdicts import (
    SEVERITY_RANK,
    Finding,
    Reason,
    ReasonCode,
    Severity,
    Status,
    Validation,
)

__all__ = [
    "SEVERITY_RANK",
    "AlertLevel",
    "AlertSeen",
    "AnyCertificate",
    "CaptureSummary",
    "Certificate",
    "CertificateCheck",
    "CertificateReport",
    "Classification",
    "ClientCertStatus",
    "ClientHelloFacts",
    "Decryption",
    "Device",
    "Finding",
    "Frames",
    "Handshake",
    "HandshakeReport",
    "Kind",
    "Outcome",
    "Problem",
    "ProblemCode",
    "Reason",
    "ReasonCode",
    "Report",
    "Sender",
    "Severity",
    "Status",
    "StoreVerdict",
    "Transport",
    "UnparsedCertificate",
    "Validation",
]
