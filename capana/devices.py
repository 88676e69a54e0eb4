"""The per-phone view: every connection a device made, what it presented, and the worst news."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from capana.findings import SEVERITY_RANK, Finding
from capana.report import CertificateReport, HandshakeReport


@dataclass(frozen=True)
class Device:
    """One phone (by device name, else by client address) across a capture."""

    name: str
    model: str | None
    addresses: tuple[str, ...]
    handshakes: tuple[HandshakeReport, ...]
    certificates: tuple[CertificateReport, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        """LSC/MIC/... of the leaf certificates it presented, in order of first use."""
        return tuple(dict.fromkeys(cert.kind for cert in self.certificates))

    @property
    def switched(self) -> bool:
        """Did the device present both an LSC and a MIC (e.g. its LSC was deleted)?"""
        return {"LSC", "MIC"} <= set(self.kinds)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(record.handshake.service for record in self.handshakes))

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for record in self.handshakes for f in record.findings)

    @property
    def worst(self) -> Finding | None:
        return max(self.findings, key=lambda f: SEVERITY_RANK[f.severity], default=None)

    def __repr__(self) -> str:
        worst = self.worst
        news = f"worst {worst.severity} {worst.code}" if worst else "no finding"
        presented = "+".join(self.kinds) or "no certificate"
        where = ", ".join(a for a in self.addresses if a != self.name)
        label = " ".join(filter(None, [self.name, self.model, where and f"at {where}"]))
        return f"<Device {label}: {presented}, {len(self.handshakes)} handshake(s), {news}>"

    def _repr_html_(self) -> str:
        from capana.views.html import device_fragment

        return device_fragment(self)


def group_devices(handshakes: Iterable[HandshakeReport]) -> tuple[Device, ...]:
    """Group handshakes by the device name in the client leaf, falling back to the client IP.

    A phone that sent a certificate from one address is one device for all its connections
    from that address, also those where it sent none (an encrypted TLS 1.3 one, say).
    """
    records = list(handshakes)
    name_by_address: dict[str, str] = {}
    for record in records:
        leaf = record.client_leaf
        if leaf is not None and leaf.classification.device:
            name_by_address.setdefault(_address(record), leaf.classification.device)
    groups: dict[str, list[HandshakeReport]] = {}
    for record in records:
        leaf = record.client_leaf
        device = leaf.classification.device if leaf is not None else None
        key = device or name_by_address.get(_address(record)) or _address(record)
        groups.setdefault(key, []).append(record)
    return tuple(_device(name, members) for name, members in groups.items())


def _device(name: str, records: list[HandshakeReport]) -> Device:
    leaves = [r.client_leaf for r in records if r.client_leaf is not None]
    models = [leaf.classification.model for leaf in leaves if leaf.classification.model]
    return Device(
        name=name,
        model=models[0] if models else None,
        addresses=tuple(dict.fromkeys(_address(r) for r in records)),
        handshakes=tuple(records),
        certificates=tuple({leaf.sha256: leaf for leaf in leaves}.values()),
    )


def _address(record: HandshakeReport) -> str:
    client = record.handshake.client
    if record.handshake.transport in ("eapol", "radius"):
        return client  # 802.1X: the client is the phone's MAC, no port
    return client.rsplit(":", 1)[0].strip("[]")
