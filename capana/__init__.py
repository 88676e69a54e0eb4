"""capana: which certificate did each Cisco phone present, LSC or MIC, and would the server
trust it? Reads pcap/pcapng captures; ``analyze`` is the one door.

>>> import capana
>>> report = capana.analyze("pcaps/phone-reboot.pcapng", trust="pcaps/phone-reboot-trust")
"""

from capana.analyzer import analyze
from capana.report import CertificateReport, HandshakeReport, Report

__all__ = ["CertificateReport", "HandshakeReport", "Report", "analyze"]


def scapy_ext(ext: object) -> None:
    """scapy's extension hook, called for each top-level package of the distribution.

    Nothing to register here: the ``dissectors`` package registers the contrib modules.
    """
