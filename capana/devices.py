"""Devices: judged handshakes and file transfers grouped per phone, by the device name its
certificate (or the file it asked for) carries."""

from __future__ import annotations

from collections.abc import Iterable

from capana.model import Device, FileReport, HandshakeReport


def group_devices(
    handshakes: Iterable[HandshakeReport], files: Iterable[FileReport] = ()
) -> tuple[Device, ...]:
    """Group handshakes by the device name in the client leaf, falling back to the client IP;
    files by the device they are for (``SEP<MAC>`` in the name), else their client IP.

    A phone that sent a certificate from one address, or asked for its own files from it, is
    one device for all its connections from that address, also those where it sent none (an
    encrypted TLS 1.3 one, say) and the files that name no device (``ITLFile.tlv``).
    """
    records = list(handshakes)
    transfers = list(files)
    name_by_address: dict[str, str] = {}
    for record in records:
        leaf = record.client_leaf
        if leaf is not None and leaf.classification.device:
            name_by_address.setdefault(_address(record), leaf.classification.device)
    for file in transfers:
        if file.device:
            name_by_address.setdefault(file.transfer.client_host, file.device)
    groups: dict[str, tuple[list[HandshakeReport], list[FileReport]]] = {}
    for record in records:
        leaf = record.client_leaf
        device = leaf.classification.device if leaf is not None else None
        key = device or name_by_address.get(_address(record)) or _address(record)
        groups.setdefault(key, ([], []))[0].append(record)
    for file in transfers:
        address = file.transfer.client_host
        key = file.device or name_by_address.get(address) or address
        groups.setdefault(key, ([], []))[1].append(file)
    return tuple(_device(name, *members) for name, members in groups.items())


def _device(name: str, records: list[HandshakeReport], files: list[FileReport]) -> Device:
    leaves = [r.client_leaf for r in records if r.client_leaf is not None]
    models = [leaf.classification.model for leaf in leaves if leaf.classification.model]
    addresses = [_address(r) for r in records] + [f.transfer.client_host for f in files]
    return Device(
        name=name,
        model=models[0] if models else None,
        addresses=tuple(dict.fromkeys(addresses)),
        handshakes=tuple(records),
        certificates=tuple({leaf.sha256: leaf for leaf in leaves}.values()),
        files=tuple(files),
    )


def _address(record: HandshakeReport) -> str:
    return record.handshake.client_host
