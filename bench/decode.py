"""Per-packet cost of the frame decoder (capana.decode), and of the scan's fast path before it.

    python3 bench/decode.py              # 20,000 frames per row, best of 41 rounds
    python3 bench/decode.py --frames 50000 --rounds 3

The frames are the TCP frames of the shipped reboot capture (real OpenSSL handshakes on plain
Ethernet/IPv4), repeated; the other rows wrap the same frames with ``samplegen.encaps``, but
"rtp (udp)", a voice stream. Each round times every method once, in turn, so that a busy
machine slows them alike; the best round counts. "loop" is the bare loop over the frames
(nothing called): the floor each ratio is to. "worth_decoding" is the scan's fast path alone,
over records whose TCP flows are all known not to matter (what most of a capture is): it drops
plain Ethernet/IPv4 frames after a few byte comparisons and yields every other frame.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "pcaps"))

from capana.capture import CaptureReader  # noqa: E402
from capana.decode import FrameDecoder, UdpPorts, decode_frame, worth_decoding  # noqa: E402
from capana.packets import SKIPPED_FLOW  # noqa: E402

CAPTURE = PROJECT / "pcaps" / "phone-reboot.pcapng"
Frames = list[tuple[int, bytes, int]]


def plain_frames(count: int) -> Frames:
    """``count`` Ethernet/IPv4/TCP frames of the reboot capture, as (linktype, frame, length)."""
    with CaptureReader(CAPTURE) as reader:
        tcp = [
            (linktype, frame, wire_length)
            for _, linktype, frame, wire_length in reader
            if linktype == 1 and frame[12:14] == b"\x08\x00" and frame[23] == 6
        ]
    return (tcp * (count // len(tcp) + 1))[:count]


def rtp_frames(count: int) -> Frames:
    """``count`` frames of a G.711 RTP stream (UDP): half of a phone capture's packets."""
    from datetime import datetime, timezone

    from samplegen import wire

    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    link = wire.Link()
    stream = wire.rtp_stream(("10.20.1.21", 20000), ("10.20.1.22", 20002), start, count=500)
    frames = [(1, link.frame(packet), len(link.frame(packet))) for packet in stream]
    return (frames * (count // len(frames) + 1))[:count]


def wrapped(frames: Frames, name: str) -> Frames:
    """The same frames in the encapsulation ``name`` of samplegen.encaps."""
    from samplegen.encaps import ENCAPSULATIONS
    from scapy.layers.l2 import Ether

    encapsulation = ENCAPSULATIONS[name]
    distinct = {frame: None for _, frame, _ in frames}
    rewrapped = {frame: encapsulation.frame(Ether(frame), True) for frame in distinct}
    return [(encapsulation.linktype, rewrapped[f], len(rewrapped[f])) for _, f, _ in frames]


def _loop(frames: Frames) -> None:
    for _linktype, _frame, _length in frames:
        pass


_RECORDS: dict[int, tuple[list, dict]] = {}  # per list of frames: its records and flows


def _fast_path(frames: Frames) -> None:
    if id(frames) not in _RECORDS:
        records = [(0.0, linktype, frame, length) for linktype, frame, length in frames]
        _RECORDS[id(frames)] = records, {frame[26:38]: SKIPPED_FLOW for _, frame, _ in frames}
    records, flows = _RECORDS[id(frames)]
    for _ in worth_decoding(records, flows, UdpPorts({1812, 1645, 5246, 5247})):
        pass


def _decode_frame(frames: Frames) -> None:
    for linktype, frame, length in frames:
        decode_frame(linktype, frame, length)


def _frame_decoder(frames: Frames) -> None:
    decode = FrameDecoder().decode
    for linktype, frame, length in frames:
        decode(linktype, frame, length, 0.0)


METHODS: dict[str, Callable[[Frames], None]] = {
    "loop": _loop,
    "worth_decoding": _fast_path,
    "decode.decode_frame": _decode_frame,
    "decode.FrameDecoder": _frame_decoder,
}
ROWS = [
    "ethernet",
    "rtp (udp)",
    "dot1q",
    "qinq",
    "cisco-metadata",
    "vxlan",
    "gre",
    "radiotap",
    "capwap-80211",
]


def timed(frames: Frames, rounds: int, methods: dict) -> dict[str, list[float]]:
    """ns per frame of each method in each round; the methods take turns within a round."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, method in methods.items():
            started = time.perf_counter_ns()
            method(frames)
            times[name].append((time.perf_counter_ns() - started) / len(frames))
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20_000, help="frames per round")
    parser.add_argument("--rounds", type=int, default=41)
    args = parser.parse_args(argv)
    plain = plain_frames(args.frames)
    print(
        f"{len(plain):,} frames per round, {args.rounds} rounds, methods taking turns; "
        "ns per frame, best round"
    )
    print(f"{'frames':16}" + "".join(f"{name:>22}" for name in METHODS))
    ethernet: dict[str, list[float]] = {}
    for row in ROWS:
        if row == "ethernet":
            frames = plain
        elif row == "rtp (udp)":
            frames = rtp_frames(len(plain))
        else:
            frames = wrapped(plain, row)
        times = timed(frames, args.rounds, METHODS)
        cells = [
            f"{min(times[name]):>22.0f}" if name in times else f"{'-':>22}" for name in METHODS
        ]
        print(f"{row:16}" + "".join(cells))
        if row == "ethernet":
            ethernet = times
    loop = ethernet["loop"]
    for name in ("decode.decode_frame", "decode.FrameDecoder"):
        extra = sorted(new - floor for new, floor in zip(ethernet[name], loop, strict=True))
        print(
            f"plain Ethernet/IPv4/TCP, {name}: median {extra[len(extra) // 2]:.0f} ns per frame "
            "over the bare loop, same round"
        )


if __name__ == "__main__":
    main()
