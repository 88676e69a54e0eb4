"""Judging the files a phone fetched at boot: parse each transfer's body, verify signatures,
classify every trust list record's certificate, then diagnose with the TLS handshakes of the
same phone in the same capture. Facts in, :class:`~capana.model.FileReport` out; never raises.

Matching a phone, within one capture (addresses are reused across captures): a file named for
a device (``SEP<MAC>`` in ``CTLSEP<MAC>.tlv``, ``ITLSEP<MAC>.tlv``, ``SEP<MAC>.cnf.xml.sgn``)
is that device's, and so is every address that asked for it; a file naming none
(``ITLFile.tlv``) is the phone's at its client address. A handshake joins the device its client
certificate names (LSC or MIC subject), else the phone at its client address.

Signatures: a trust list by its own signer record (the SAST, else TFTP record, whose serial the
header names); a signed or encrypted configuration by the TFTP (or CCM+TFTP) records of the trust
lists the same phone downloaded in the same capture, ``unknown`` when none has the signer's
serial or the phone downloaded none. A trust list whose signature fails judges nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone

from capana.domain import CONFIG_SIGNER_ROLES, PHONE_FILE_DEVICE_PATTERN
from capana.file_findings import Phone, diagnose_file
from capana.judging import classified
from capana.model import (
    FileKind,
    FileReport,
    FileTransfer,
    HandshakeReport,
    PhoneConfig,
    RecordReport,
    SignatureCheck,
)
from capana.trustfiles import check_signature, kind_of_name, parse_file
from capana.truststore import TrustStore

_TRUST_LISTS = ("ctl", "itl")
_SIGNED_CONFIGS = ("config-signed", "config-encrypted")


def judge_files(
    transfers: Sequence[FileTransfer],
    handshakes: Sequence[HandshakeReport],
    stores: Mapping[str | None, TrustStore],
    capture_start: datetime | None,
) -> tuple[FileReport, ...]:
    """Every transfer of one capture judged, in the order given; ``handshakes`` are the same
    capture's, judged already."""
    read = _Reader(tuple(stores.values()))
    reports = [read(transfer) for transfer in transfers]
    device_at = _devices_by_address(transfers, handshakes)
    members: dict[str, list[int]] = {}
    for index, transfer in enumerate(transfers):
        key = _device_in_name(transfer.name) or _key(transfer.client_host, device_at)
        members.setdefault(key, []).append(index)
    by_phone: dict[str, list[HandshakeReport]] = {}
    for record in handshakes:
        leaf = record.client_leaf
        device = leaf.classification.device if leaf else None
        by_phone.setdefault(device or _key(_host(record), device_at), []).append(record)
    for key, indexes in members.items():
        mine = [reports[i] for i in indexes]
        judged = _judge_phone(key, mine, by_phone.get(key, ()), capture_start)
        for index, report in zip(indexes, judged, strict=True):
            reports[index] = report
    return tuple(reports)


class _Reader:
    """Reads each transfer's file, once per distinct body and kind of name: a site's phones
    fetch the same ITL (and ITLFile.tlv) under their own names, and their reports then share
    one body, one parse and one signature check (bounded by the capture's distinct files)."""

    def __init__(self, stores: tuple[TrustStore, ...]) -> None:
        self.stores = stores
        self.seen: dict[tuple[bytes, FileKind], FileReport] = {}

    def __call__(self, transfer: FileTransfer) -> FileReport:
        """The facts of one transfer's file, a trust list's own signature checked."""
        device = _device_in_name(transfer.name)
        named = kind_of_name(transfer.name)
        if transfer.status != "ok":
            return FileReport(transfer, named, device, None)
        key = (hashlib.sha256(transfer.body).digest(), named)
        same = self.seen.get(key)
        if same is not None:
            shared = replace(transfer, body=same.transfer.body)
            return replace(same, transfer=shared, device=device)
        file = parse_file(transfer.body, transfer.name)
        records = tuple(
            RecordReport(
                record, classified(record.certificate, self.stores) if record.certificate else None
            )
            for record in file.records
        )
        report = FileReport(transfer, file.kind, device, file, records, config=file.config)
        if file.kind in _TRUST_LISTS:
            report = _signed(report, file.signature_check)
        self.seen[key] = report
        return report


def _judge_phone(
    key: str,
    reports: list[FileReport],
    handshakes: Sequence[HandshakeReport],
    capture_start: datetime | None,
) -> list[FileReport]:
    """One phone's files, in order: configurations checked against its trust lists, then
    every file diagnosed."""
    device = key if PHONE_FILE_DEVICE_PATTERN.fullmatch(key) else None
    mine = [replace(report, device=device) for report in reports]
    trust_lists = [r for r in mine if r.kind in _TRUST_LISTS and r.file is not None]
    trusted = [r for r in trust_lists if r.signature is None or r.signature.status != "invalid"]
    # The TFTP records sign configurations; each certificate once (the phone may have fetched
    # the same list under two names).
    signers = list(
        {
            c.certificate.sha256: c.certificate.certificate
            for r in trusted
            for c in r.records
            if c.certificate and c.role in CONFIG_SIGNER_ROLES
        }.values()
    )
    companion = next(
        (r.config for r in mine if r.kind == "config-signed" and r.config and r.config.encrypted),
        None,
    )
    for at, report in enumerate(mine):
        if report.file is None or report.kind not in _SIGNED_CONFIGS:
            continue
        check = (
            check_signature(report.file, signers)
            if trusted
            else SignatureCheck("unknown", "signer-not-given")
        )
        config = report.config
        if report.kind == "config-encrypted":
            config = companion or _encrypted_config()
        mine[at] = replace(_signed(report, check), config=config)
    phone = Phone(
        name=key,
        handshakes=tuple(handshakes),
        trust_lists=tuple(trusted),
    )
    judged = [
        replace(report, findings=diagnose_file(report, phone, _moment(report, capture_start)))
        for report in mine
    ]
    return judged


def _signed(report: FileReport, check: SignatureCheck | None) -> FileReport:
    """The report with its signature check, and the signer's certificate when one verified or
    was tried."""
    signer = check.signer if check else None
    return replace(report, signature=check, signer=classified(signer) if signer else None)


def _encrypted_config() -> PhoneConfig:
    """An ``.enc.sgn`` whose companion configuration was not seen: encrypted, bound to an
    unknown certificate."""
    return PhoneConfig(None, None, None, (), None, (), None, True, (), None, None)


def _devices_by_address(
    transfers: Iterable[FileTransfer], handshakes: Iterable[HandshakeReport]
) -> dict[str, str]:
    """The device at each client address: from file names first, then client certificates."""
    found: dict[str, str] = {}
    for transfer in transfers:
        device = _device_in_name(transfer.name)
        if device:
            found.setdefault(transfer.client_host, device)
    for record in handshakes:
        leaf = record.client_leaf
        if leaf is not None and leaf.classification.device:
            found.setdefault(_host(record), leaf.classification.device)
    return found


def _device_in_name(name: str) -> str | None:
    """``SEP2C3124C9F8E1`` from ``ITLSEP2C3124C9F8E1.tlv``; None for ``ITLFile.tlv``."""
    match = PHONE_FILE_DEVICE_PATTERN.search(name.rsplit("/", 1)[-1])
    return "SEP" + match[0][3:].upper() if match else None


def _key(address: str, device_at: Mapping[str, str]) -> str:
    return device_at.get(address, address)


def _host(record: HandshakeReport) -> str:
    """The client's address, without its port (802.1X clients are MAC addresses)."""
    handshake = record.handshake
    if handshake.transport in ("eapol", "radius"):
        return handshake.client
    return handshake.client.rsplit(":", 1)[0].strip("[]")


def _moment(report: FileReport, capture_start: datetime | None) -> datetime:
    """When the file was fetched: what the phone judged its certificates' dates by."""
    return report.transfer.start or capture_start or datetime.now(timezone.utc)
