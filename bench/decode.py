"""Per-packet cost of the frame decoders: capana.decode against capana.packets' decode_tcp.

    python3 bench/decode.py              # 200,000 frames per row, best of 7 rounds
    python3 bench/decode.py --frames 50000 --rounds 3

The frames are the TCP frames of the shipped reboot capture (real OpenSSL handshakes on plain
Ethernet/IPv4), repeated; the other rows wrap the same frames with ``samplegen.encaps``, but
"rtp (udp)", a voice stream (where decode_tcp only says "not TCP" and decode_frame gives the
datagram). Each
round times every method once, in turn, so that a busy machine slows them alike; the best round
counts. "loop" is the bare loop over the frames (nothing called): the floor each ratio is to.
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
from capana.decode import FrameDecoder, decode_frame  # noqa: E402
from capana.packets import decode_tcp  # noqa: E402

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


def _decode_tcp(frames: Frames) -> None:
    for linktype, frame, length in frames:
        decode_tcp(linktype, frame, length)


def _decode_frame(frames: Frames) -> None:
    for linktype, frame, length in frames:
        decode_frame(linktype, frame, length)


def _frame_decoder(frames: Frames) -> None:
    decode = FrameDecoder().decode
    for linktype, frame, length in frames:
        decode(linktype, frame, length, 0.0)


METHODS: dict[str, Callable[[Frames], None]] = {
    "loop": _loop,
    "packets.decode_tcp": _decode_tcp,
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
_DECODE_TCP_ROWS = ("ethernet", "rtp (udp)", "dot1q", "qinq")


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
        methods = {
            name: method
            for name, method in METHODS.items()
            if name != "packets.decode_tcp" or row in _DECODE_TCP_ROWS
        }
        times = timed(frames, args.rounds, methods)
        cells = [
            f"{min(times[name]):>22.0f}" if name in times else f"{'-':>22}" for name in METHODS
        ]
        print(f"{row:16}" + "".join(cells))
        if row == "ethernet":
            ethernet = times
    old = ethernet["packets.decode_tcp"]
    for name in ("decode.decode_frame", "decode.FrameDecoder"):
        ratios = sorted(new / before for new, before in zip(ethernet[name], old, strict=True))
        median = ratios[len(ratios) // 2]
        quartiles = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
        print(
            f"plain Ethernet/IPv4/TCP, {name} / decode_tcp, same round: median "
            f"{median:.3f} (quartiles {quartiles[0]:.3f}-{quartiles[1]:.3f}), "
            f"best rounds {min(ethernet[name]):.0f} / {min(old):.0f} ns"
        )


if __name__ == "__main__":
    main()
