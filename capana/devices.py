"""Devices: judged handshakes and file transfers grouped per phone, by the device name its
certificate (or the name it gave inside its sessions, or the file it asked for) carries."""

from __future__ import annotations

from collections.abc import Iterable

from capana.classify import claimed_identity
from capana.model import Device, FileReport, HandshakeReport


def group_devices(
    handshakes: Iterable[HandshakeReport], files: Iterable[FileReport] = ()
) -> tuple[Device, ...]:
    """Group handshakes by the device name in the client leaf, else the name the phone gave
    itself inside the session (CAPF, TVS, registration), falling back to the client IP; files
    by the device they are for (``SEP<MAC>`` in the name), else their client IP.

    A phone that sent a certificate (or its name) from one address, or asked for its own files
    from it, is one device for all its connections from that address, also those where it sent
    none (an encrypted TLS 1.3 one, a NULL-cipher registration, say) and the files that name no
    device (``ITLFile.tlv``).
    """
    records = list(handshakes)
    transfers = list(files)
    names = {id(record): _name(record) for record in records}
    name_by_address: dict[str, str] = {}
    for record in sorted(records, key=lambda r: r.client_leaf is None):  # certificates first
        name = names[id(record)]
        if name:
            name_by_address.setdefault(_address(record), name)
    for file in transfers:
        if file.device:
            name_by_address.setdefault(file.transfer.client_host, file.device)
    groups: dict[str, tuple[list[HandshakeReport], list[FileReport]]] = {}
    for record in records:
        address = _address(record)
        key = names[id(record)] or name_by_address.get(address) or address
        groups.setdefault(key, ([], []))[0].append(record)
    for file in transfers:
        address = file.transfer.client_host
        key = file.device or name_by_address.get(address) or address
        groups.setdefault(key, ([], []))[1].append(file)
    return tuple(_device(name, *members) for name, members in groups.items())


def _name(record: HandshakeReport) -> str | None:
    """The device name of the certificate, else the one claimed inside the session."""
    leaf = record.client_leaf
    if leaf is not None and leaf.classification.device:
        return leaf.classification.device
    return claimed_identity(record.handshake)[0]


def _device(name: str, records: list[HandshakeReport], files: list[FileReport]) -> Device:
    leaves = [r.client_leaf for r in records if r.client_leaf is not None]
    models = [leaf.classification.model for leaf in leaves if leaf.classification.model]
    models += [m for r in records if (m := claimed_identity(r.handshake)[1])]
    models += [  # the certificate it authenticated to CAPF with
        m
        for r in records
        if r.capf and r.capf.presented and (m := r.capf.presented.classification.model)
    ]
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
