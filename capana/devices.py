"""Devices: judged handshakes grouped per phone, by the device name its certificate carries."""

from __future__ import annotations

from collections.abc import Iterable

from capana.model import Device, HandshakeReport


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
    return record.handshake.client_host
