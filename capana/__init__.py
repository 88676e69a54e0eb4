"""capana: which certificate did each Cisco phone present, LSC or MIC, and would the server
trust it? Reads pcap/pcapng captures; ``analyze`` is the one door. ``verify`` judges a
certificate without a capture.

>>> import capana
>>> report = capana.analyze("pcaps/phone-reboot.pcapng", trust="pcaps/phone-reboot-trust")
>>> capana.verify("phone.pem", trust="CallManager-trust/").status  # doctest: +SKIP

Importing capana is cheap: the analyzer and the report types load when first used, so that the
pytest plugin costs nothing in a test run that does not use it.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from capana.analyzer import analyze
    from capana.certcheck import verify
    from capana.model import CertificateReport, Device, HandshakeReport, Report, Validation

__all__ = [
    "CertificateReport",
    "Device",
    "HandshakeReport",
    "Report",
    "Validation",
    "analyze",
    "verify",
]

_LAZY = {
    "analyze": "capana.analyzer",
    "verify": "capana.certcheck",
    "Validation": "capana.model",
    "CertificateReport": "capana.model",
    "Device": "capana.model",
    "HandshakeReport": "capana.model",
    "Report": "capana.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'capana' has no attribute {name!r}")
    return getattr(import_module(module), name)


def scapy_ext(ext: object) -> None:
    """scapy's extension hook (``conf.exts.load("capana")``): register the contrib modules of
    ``capana.dissectors``, which stay unloaded until ``load_contrib`` asks for one."""
    from capana.dissectors import scapy_ext as register

    register(ext)


if "IPython" in sys.modules:  # in a notebook: rich display of report objects, by type name
    from capana.notebook import register_display

    register_display()
