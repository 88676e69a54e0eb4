"""Judging the files a phone fetched at boot: parse each transfer's body, verify signatures,
classify every trust list record's certificate, then diagnose with the TLS handshakes of the
same phone in the same capture. Facts in, :class:`~capana.model.FileReport` out; never raises.

Matching a phone, within one capture (addresses are reused across captures): a file named for
a device (``SEP<MAC>`` in ``CTLSEP<MAC>.tlv``, ``ITLSEP<MAC>.tlv``, ``SEP<MAC>.cnf.xml.sgn``)
is that device's, and so is every address that asked for it; a file naming none
(``ITLFile.tlv``) is the phone's at its client address. A handshake joins the device its client
certificate names (LSC or MIC subject), else the phone at its client address.

Signatures: a trust list by its own signer record (the SAST, else TFTP record, whose serial the
header names); a signed or encrypted configuration by the certificates of the trust lists the
same phone downloaded in the same capture (``unknown`` when it downloaded none). A trust list
whose signature fails is not used to judge anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone

from capana.domain import PHONE_FILE_DEVICE_PATTERN
from capana.file_findings import Phone, diagnose_file
from capana.judging import classified
from capana.model import (
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
    all_stores = tuple(stores.values())
    reports = [_read(transfer, all_stores) for transfer in transfers]
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
        reports = _judge_phone(key, indexes, reports, by_phone.get(key, ()), capture_start)
    return tuple(reports)


def _read(transfer: FileTransfer, stores: tuple[TrustStore, ...]) -> FileReport:
    """The facts of one transfer's file, a trust list's own signature checked."""
    device = _device_in_name(transfer.name)
    if transfer.status != "ok":
        return FileReport(transfer, kind_of_name(transfer.name), device, None)
    file = parse_file(transfer.body, transfer.name)
    records = tuple(
        RecordReport(record, classified(record.certificate, stores) if record.certificate else None)
        for record in file.records
    )
    report = FileReport(transfer, file.kind, device, file, records, config=file.config)
    if file.kind in _TRUST_LISTS:
        return _signed(report, file.signature_check)
    return report


def _judge_phone(
    key: str,
    indexes: list[int],
    reports: list[FileReport],
    handshakes: Sequence[HandshakeReport],
    capture_start: datetime | None,
) -> list[FileReport]:
    """One phone's files: configurations checked against its trust lists, then diagnosed."""
    device = key if PHONE_FILE_DEVICE_PATTERN.fullmatch(key) else None
    mine = [replace(reports[i], device=device) for i in indexes]
    trust_lists = [r for r in mine if r.kind in _TRUST_LISTS and r.file is not None]
    trusted = [r for r in trust_lists if r.signature is None or r.signature.status != "invalid"]
    signers = [c.certificate.certificate for r in trusted for c in r.records if c.certificate]
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
        device=device,
        addresses=frozenset(r.transfer.client_host for r in mine),
        handshakes=tuple(handshakes),
        trust_lists=tuple(trusted),
        configs=tuple(r for r in mine if r.config is not None),
    )
    judged = [
        replace(report, findings=diagnose_file(report, phone, _moment(report, capture_start)))
        for report in mine
    ]
    out = list(reports)
    for index, report in zip(indexes, judged, strict=True):
        out[index] = report
    return out


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
