"""What a certificate claims to be: a phone's MIC or LSC, a CAPF, another CA, or other.

The issuer decides, not the subject (an 88xx phone's MIC and LSC share one subject). The kind is
a claim read from names; whether the claim holds is for :mod:`capana.validation` to say.
"""

from __future__ import annotations

from collections.abc import Iterable

from capana.certificates import name_key
from capana.domain import (
    CAPF_CN_PATTERN,
    LSC_ISSUING_STORES,
    PHONE_CN_PATTERN,
    PID_PATTERN,
    is_manufacturing_ca,
)
from capana.model import Certificate, Classification, Handshake
from capana.truststore import TrustStore


def classify(cert: Certificate, stores: Iterable[TrustStore] = ()) -> Classification:
    """Classify by issuer name (MIC, LSC), by subject (CAPF) and by the CA flag.

    An LSC from an online/offline CA is recognised when its issuer's name is a CA in a supplied
    CAPF, CallManager or default store (not a manufacturing CA) and its subject names a phone.
    """
    device, model = phone_identity(cert.subject_cn, cert.subject_serial_number)
    if cert.subject_cn and CAPF_CN_PATTERN.fullmatch(cert.subject_cn):
        return Classification("CAPF")
    if cert.is_ca:
        return Classification("CA")
    if is_manufacturing_ca(cert.issuer_cn):
        return Classification("MIC", device, model)
    if cert.issuer_cn and CAPF_CN_PATTERN.fullmatch(cert.issuer_cn):
        return Classification("LSC", device, model)
    if device and _issued_by_store_ca(cert, stores):
        return Classification("LSC", device, model)
    return Classification("other", device, model)


def phone_identity(
    common_name: str | None, serial_number: str | None = None
) -> tuple[str | None, str | None]:
    """(device, model) from CN ``CP-8861-SEP2C3124C9F8E1`` or ``SEP…``; the model also from the
    subject's serialNumber ``PID:CP-8861 SN:…``."""
    match = PHONE_CN_PATTERN.fullmatch(common_name) if common_name else None
    device = "SEP" + match["device"][3:].upper() if match else None
    model = match["model"] if match and match["model"] else None
    if model is None and serial_number:
        pid = PID_PATTERN.search(serial_number)
        model = pid["model"] if pid else None
    return device, model


def claimed_identity(handshake: Handshake) -> tuple[str | None, str | None]:
    """(device, model) a phone gave itself inside its sessions: the device name it sent CAPF,
    TVS (``CP-8861-SEP…``) or the registrar. A claim, weaker than a certificate's name."""
    names = [handshake.capf.device if handshake.capf else None]
    names.append(handshake.registration.device if handshake.registration else None)
    names += [query.device for query in handshake.tvs.queries] if handshake.tvs else []
    identities = [phone_identity(name) for name in names if name]
    device = next((device for device, _ in identities if device), None)
    model = next((model for _, model in identities if model), None)
    return device, model


def _issued_by_store_ca(cert: Certificate, stores: Iterable[TrustStore]) -> bool:
    issuer = name_key(cert.issuer_der)
    return any(
        ca.is_ca and not is_manufacturing_ca(ca.subject_cn) and name_key(ca.subject_der) == issuer
        for store in stores
        if store.name in LSC_ISSUING_STORES
        for ca in store.certificates
    )
