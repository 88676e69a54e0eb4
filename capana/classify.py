"""What a certificate claims to be: a phone's MIC or LSC, a CAPF, another CA, or other.

The issuer decides, not the subject (an 88xx phone's MIC and LSC share one subject). The kind is
a claim read from names; whether the claim holds is for :mod:`capana.validation` to say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import NameOID

from capana.certificates import Certificate
from capana.domain import CAPF_CN_PATTERN, MANUFACTURING_CA_NAMES, PHONE_CN_PATTERN, PID_PATTERN
from capana.truststore import TrustStore

Kind = Literal["MIC", "LSC", "CAPF", "CA", "other"]

# Stores whose CAs issue LSCs when CAPF runs in online/offline CA mode (None: the default store).
_LSC_ISSUING_STORES = frozenset({"capf", "callmanager", None})
_MANUFACTURING = frozenset(name.casefold() for name in MANUFACTURING_CA_NAMES)
_NAME_ATTRIBUTES = {"serialNumber": NameOID.SERIAL_NUMBER, "emailAddress": NameOID.EMAIL_ADDRESS}


@dataclass(frozen=True)
class Classification:
    """``kind``, with the phone's device (``SEP`` + MAC) and model where the subject has them."""

    kind: Kind
    device: str | None = None
    model: str | None = None


def classify(cert: Certificate, stores: Iterable[TrustStore] = ()) -> Classification:
    """Classify by issuer name (MIC, LSC), by subject (CAPF) and by the CA flag.

    An LSC from an online/offline CA is recognised when its issuer's name is a CA in a supplied
    CAPF, CallManager or default store (not a manufacturing CA) and its subject names a phone.
    """
    subject_cn = common_name(cert.subject)
    issuer_cn = common_name(cert.issuer)
    device, model = phone_identity(cert.subject)
    if subject_cn and CAPF_CN_PATTERN.fullmatch(subject_cn):
        return Classification("CAPF")
    if cert.is_ca:
        return Classification("CA")
    if issuer_cn and issuer_cn.casefold() in _MANUFACTURING:
        return Classification("MIC", device, model)
    if issuer_cn and CAPF_CN_PATTERN.fullmatch(issuer_cn):
        return Classification("LSC", device, model)
    if device and _issued_by_store_ca(cert, stores):
        return Classification("LSC", device, model)
    return Classification("other", device, model)


def phone_identity(subject: str) -> tuple[str | None, str | None]:
    """(device, model) from ``CN=CP-8861-SEP2C3124C9F8E1`` or ``CN=SEP…``; model also from PID."""
    cn = common_name(subject)
    match = PHONE_CN_PATTERN.fullmatch(cn) if cn else None
    device = "SEP" + match["device"][3:].upper() if match else None
    model = match["model"] if match and match["model"] else None
    if model is None:
        serial = _attribute(subject, NameOID.SERIAL_NUMBER)
        pid = PID_PATTERN.search(serial) if serial else None
        model = pid["model"] if pid else None
    return device, model


def common_name(rfc4514: str) -> str | None:
    """The common name of an RFC 4514 name (the first in certificate order), or None."""
    return _attribute(rfc4514, NameOID.COMMON_NAME)


@lru_cache(maxsize=4096)
def _attribute(rfc4514: str, oid: x509.ObjectIdentifier) -> str | None:
    # Cached: every handshake of a site reboot names the same issuers and CAs.
    try:
        name = x509.Name.from_rfc4514_string(rfc4514, _NAME_ATTRIBUTES)
    except ValueError:
        return None
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def _issued_by_store_ca(cert: Certificate, stores: Iterable[TrustStore]) -> bool:
    return any(
        ca.subject_key == cert.issuer_key
        and ca.is_ca
        and (common_name(ca.subject) or "").casefold() not in _MANUFACTURING
        for store in stores
        if store.name in _LSC_ISSUING_STORES
        for ca in store.certificates
    )
