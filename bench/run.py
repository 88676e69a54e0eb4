"""capana's benchmark: build the captures, time every method on them in one go, check the answers.

    python3 bench/run.py                  # 1M-packet capture, reboot, many connections, --jobs
    python3 bench/run.py --quick          # the same at a tenth of the size, for a smoke test
    python3 bench/run.py --packets 4000000 --only big   # the memory check at 4M packets
    python3 bench/run.py --only startup   # start-up only: capana and tshark on a 46-packet file

Each row runs as its own process under ``/usr/bin/time -v`` (peak RSS); wall time is measured
around it. capana's answer is compared with what was planted (client endpoint and certificate
SHA-256 of every handshake); any difference fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
TIME = "/usr/bin/time"
TSHARK_FILTER = "tls.handshake.type==11"
SCAPY_SLICE = 5_000  # packets: scapy's TCPSession is far too slow for the whole file
JOB_FILES = 4
# Bumped when a capture's content changes, so that bench/out/ rebuilds it.
BUILD_VERSION = 2
# Start-up: a small real capture (one phone handshake), each command run this many times.
SMALL_CAPTURE = PROJECT / "pcaps" / "reordered-cert.pcap"
STARTUP_RUNS = 10


@dataclass
class Row:
    """One measured run: what, on which capture, how long, how much memory, and whether right."""

    method: str
    capture: str
    packets: int
    megabytes: float
    wall: float
    rss_mb: float
    check: str = ""

    @property
    def packets_per_s(self) -> float:
        return self.packets / self.wall

    @property
    def mb_per_s(self) -> float:
        return self.megabytes / self.wall


# --- building -----------------------------------------------------------------------------------


def build(out: Path, packets: int, quick: bool, only: str | None) -> dict[str, dict]:
    """Every capture the run needs (reused when already built with the same sizes)."""
    sys.path.insert(0, str(BENCH))
    import captures

    scale = 10 if quick else 1
    plan = {
        "big": packets,
        "reboot": 5000 // scale,
        "many": 100_000 // scale,
        "sequential": 100_000 // scale,
        "files": 100_000 // scale,
        "jobs": 250_000 // scale,
    }
    templates_file = out / "templates.pickle"
    if templates_file.exists():
        chosen, trust = pickle.loads(templates_file.read_bytes())
    else:
        print("making 36 real handshakes with OpenSSL ...", flush=True)
        chosen, trust = captures.templates(36, out)
        templates_file.write_bytes(pickle.dumps((chosen, trust)))
    built: dict[str, dict] = {}
    for name, size in plan.items():
        if only and name != only:
            continue
        facts_file = out / f"{name}-{size}-v{BUILD_VERSION}.json"
        if facts_file.exists():
            built[name] = json.loads(facts_file.read_text())
            continue
        print(f"building the {name} capture ({size:,}) ...", flush=True)
        started = time.perf_counter()
        built[name] = _build_one(captures, chosen, out, name, size)
        built[name]["trust"] = str(trust)
        facts_file.write_text(json.dumps(built[name]))
        print(f"  {time.perf_counter() - started:.1f} s", flush=True)
    return built


def _build_one(captures, chosen, out: Path, name: str, size: int) -> dict:
    if name == "big":
        path = out / f"big-{size}.pcap"
        shakes, facts = captures.planted_copies(chosen, 48)
        count = captures.write_capture(path, size, shakes, len(facts))
    elif name == "reboot":
        path = out / f"reboot-{size}.pcap"
        shakes, facts = captures.planted_copies(chosen, size)
        count = captures.write_capture(path, size * 10, shakes, len(facts), step_us=200)
    elif name in ("many", "sequential"):
        path = out / f"{name}-{size}.pcap"
        concurrent = name == "many"
        count, facts = captures.many_connections(path, chosen, size, size // 100, concurrent)
    elif name == "files":
        path = out / f"files-{size}.pcap"
        request = captures.FILE_REQUEST
        count, facts = captures.many_connections(path, chosen, size, 0, False, request)
    else:
        path = out / f"jobs-{size}"
        shutil.rmtree(path, ignore_errors=True)
        facts, count = [], 0
        for number in range(JOB_FILES):
            shakes, some = captures.planted_copies(chosen, 12, first=1000 * number)
            count += captures.write_capture(path / f"part{number}.pcap", size, shakes, len(some))
            facts += some
    built = {"path": str(path), "packets": count, "planted": [asdict(f) for f in facts]}
    return {**built, "connections": size} if name == "files" else built


# --- measuring ----------------------------------------------------------------------------------


def measure(
    method: str,
    capture: dict,
    command: Sequence[str],
    packets: int | None = None,
    env: dict[str, str] | None = None,
) -> Row:
    """Run ``command`` under ``/usr/bin/time -v``; fail loudly if it fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        done = subprocess.run(
            [TIME, "-v", "-o", report.name, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT,
            env=env,
        )
        wall = time.perf_counter() - started
        rss_kb = next(
            int(line.split(":")[1])
            for line in Path(report.name).read_text().splitlines()
            if "Maximum resident set size" in line
        )
    if done.returncode not in (0, 1):
        raise SystemExit(f"{method} failed ({done.returncode}): {done.stderr[-2000:]}")
    path = Path(capture["path"])
    size = sum(f.stat().st_size for f in path.glob("*")) if path.is_dir() else path.stat().st_size
    count = packets if packets is not None else capture["packets"]
    if packets is not None:
        size = size * packets / capture["packets"]
    return Row(method, path.name, count, size / 1e6, wall, rss_kb / 1024)


def capana_row(name: str, capture: dict, out: Path, options: Sequence[str] = ()) -> Row:
    """``capana scan`` with the trust store, JSON Lines out; its handshakes checked exactly."""
    result = out / f"{name}.jsonl"
    command = [sys.executable, "-m", "capana", "scan", capture["path"], "--trust"]
    command += [capture["trust"], "--format", "jsonl", "--output", str(result), *options]
    row = measure("capana scan", capture, command)
    row.check = check(capture, result)
    return row


def files_row(capture: dict, out: Path) -> tuple[Row, str]:
    """``capana scan`` of one HTTP download of a phone's configuration per connection (empty
    bodies, as a TFTP service answers for a phone it does not know): every one a transfer."""
    result = out / "files.json"
    command = [sys.executable, "-m", "capana", "scan", capture["path"], "--format", "json"]
    row = measure("capana scan", capture, [*command, "--output", str(result)])
    transfers = json.loads(result.read_text())["files"]
    wanted = capture["connections"]
    if len(transfers) != wanted or any(t["status"] != "ok" for t in transfers):
        raise SystemExit(f"WRONG ANSWER on {capture['path']}: {len(transfers)} of {wanted}")
    row.check = f"{len(transfers)}/{wanted} transfers"
    return row, f"files: {len(transfers) / row.wall:,.0f} HTTP file transfers/s"


def check(capture: dict, result: Path) -> str:
    """Every planted handshake found once with its exact chain, and nothing else; else exit."""
    found = []
    for line in result.read_text().splitlines():
        record = json.loads(line)
        chain = tuple(cert["sha256"] for cert in record["client_chain"])
        found.append((record["client"], chain))
    planted = [(p["client"], tuple(p["client_chain"])) for p in capture["planted"]]
    if sorted(found) != sorted(planted):
        missing = set(planted) - set(found)
        extra = set(found) - set(planted)
        raise SystemExit(
            f"WRONG ANSWER on {capture['path']}: planted {len(planted)}, found {len(found)}; "
            f"missing {sorted(missing)[:3]} ... extra {sorted(extra)[:3]} ..."
        )
    return f"{len(found)}/{len(planted)} handshakes, chains exact"


def plain_loop(path: str) -> int:
    """The floor: walk the pcap records with ``struct`` and slice each frame; nothing else."""
    header = struct.Struct("<IIII").unpack_from
    count = 0
    with open(path, "rb") as capture:
        buf = capture.read(24 + (1 << 20))
        off = 24
        while True:
            end = len(buf)
            while off + 16 <= end:
                _, _, caplen, _ = header(buf, off)
                nxt = off + 16 + caplen
                if nxt > end:
                    break
                frame = buf[off + 16 : nxt]
                count += frame is not None
                off = nxt
            more = capture.read(1 << 20)
            if not more:
                break
            buf, off = buf[off:] + more, 0
    return count


def scapy_slice(path: str, packets: int) -> None:
    """scapy's TLS layer over a ``TCPSession`` on the first ``packets`` packets of ``path``."""
    from scapy.all import TCPSession, load_layer, sniff

    load_layer("tls")
    from scapy.layers.tls.handshake import TLSCertificate

    certificates = 0

    def seen(packet) -> None:
        nonlocal certificates
        certificates += packet.haslayer(TLSCertificate)

    sniff(offline=path, session=TCPSession, prn=seen, count=packets, store=False)
    print(certificates)


def breakdown(path: str, trust: str) -> None:
    """Where the time per handshake goes (CPU): reading + parsing, judging, the JSON Lines view."""
    from capana.devices import group_devices
    from capana.inputs import load_stores
    from capana.judging import judge
    from capana.model import Report
    from capana.scan import scan_capture
    from capana.views.json import render_jsonl

    stores = load_stores(trust)
    started = time.process_time()
    summary, shakes = scan_capture(path)
    scanned = time.process_time()
    records = [judge(handshake, stores, summary.start) for handshake in shakes]
    judged = time.process_time()
    render_jsonl(Report((summary,), tuple(records), group_devices(records), ("default",)))
    rendered = time.process_time()
    each = [(scanned - started), (judged - scanned), (rendered - judged)]
    parts = ", ".join(
        f"{what} {seconds / len(shakes) * 1e3:.2f} ms"
        for what, seconds in zip(("read+reassemble+parse", "judge", "report"), each, strict=True)
    )
    print(f"per handshake (CPU): {parts}; {sum(each) / len(shakes) * 1e3:.2f} ms in all")


def jobs_worker(folder: str, trust: str, processes: int) -> None:
    """capana.analyze on each capture of ``folder``, in ``processes`` worker processes."""
    from multiprocessing import Pool

    files = sorted(str(p) for p in Path(folder).glob("*.pcap"))
    with Pool(processes) as pool:
        reports = pool.starmap(_analyze_one, [(f, trust) for f in files])
    print(sum(reports))


def executor_worker(folder: str, trust: str, processes: int, result: str) -> None:
    """``capana.analyze`` of a folder on a ``ProcessPoolExecutor``, its handshakes as JSON Lines."""
    from concurrent.futures import ProcessPoolExecutor

    import capana
    from capana.views.json import render_jsonl

    with ProcessPoolExecutor(max_workers=processes) as pool:
        report = capana.analyze(folder, trust=trust, jobs=processes, executor=pool)
    Path(result).write_text(render_jsonl(report))


def _analyze_one(path: str, trust: str) -> int:
    import capana

    return len(capana.analyze(path, trust=trust).handshakes)


# --- the run ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="big capture size")
    parser.add_argument("--quick", action="store_true", help="a tenth of every size")
    parser.add_argument(
        "--only", choices=("big", "reboot", "many", "sequential", "files", "jobs", "startup")
    )
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    parser.add_argument("--no-tshark", action="store_true", help="skip the tshark row")
    parser.add_argument("--build-only", action="store_true", help="make the captures, run nothing")
    parser.add_argument("--plain-loop", metavar="PCAP", help=argparse.SUPPRESS)
    parser.add_argument("--scapy-slice", metavar="PCAP", help=argparse.SUPPRESS)
    parser.add_argument("--jobs-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--breakdown", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--executor-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_loop:
        print(plain_loop(args.plain_loop))
        return 0
    if args.scapy_slice:
        scapy_slice(args.scapy_slice, SCAPY_SLICE)
        return 0
    if args.breakdown:
        breakdown(*args.breakdown)
        return 0
    if args.jobs_worker:
        folder, trust, processes = args.jobs_worker
        jobs_worker(folder, trust, int(processes))
        return 0
    if args.executor_worker:
        folder, trust, processes, result = args.executor_worker
        executor_worker(folder, trust, int(processes), result)
        return 0
    if not Path(TIME).exists():
        raise SystemExit(f"{TIME} is missing: apt-get install time")
    if args.quick and args.packets == 1_000_000:
        args.packets = 100_000
    args.out.mkdir(parents=True, exist_ok=True)
    built = {} if args.only == "startup" else build(args.out, args.packets, args.quick, args.only)
    if args.build_only:
        return 0
    rows, notes = run_all(built, args)
    print_table(rows, notes)
    return 0


def run_all(built: dict[str, dict], args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes = [f"load average before: {os.getloadavg()[0]:.2f} (2 cores, shared)"]
    me = [sys.executable, str(BENCH / "run.py")]
    if args.only in (None, "startup"):
        startup, note = startup_rows(args.no_tshark, 5 if args.quick else STARTUP_RUNS)
        rows += startup
        notes.append(note)
    big = built.get("big")
    if big:
        plain = measure("plain struct loop", big, [*me, "--plain-loop", big["path"]])
        rows.append(plain)
        ours = capana_row("big", big, args.out)
        rows.append(ours)
        notes.append(f"capana / plain loop: {ours.wall / plain.wall:.2f}x the time (target <= 2)")
        if shutil.which("tshark") and not args.no_tshark:
            command = ["tshark", "-r", big["path"], "-o", "tcp.reassemble_out_of_order:TRUE"]
            command += ["-Y", TSHARK_FILTER, "-T", "fields", "-e", "tls.handshake.certificate"]
            shark = measure("tshark -Y cert", big, command)
            rows.append(shark)
            faster = shark.wall / ours.wall
            notes.append(f"tshark / capana: capana {faster:.1f}x faster (target >= 15)")
        elif not args.no_tshark:
            notes.append("tshark not installed (apt-get install tshark): no tshark row")
        rows.append(scapy_row(big, args.out, me))
    if "reboot" in built:
        reboot = capana_row("reboot", built["reboot"], args.out)
        rows.append(reboot)
        shakes = len(built["reboot"]["planted"])
        rate = shakes / reboot.wall
        notes.append(f"reboot: {rate:.0f} handshakes/s, validation on (target >= 1,000)")
        command = [*me, "--breakdown", built["reboot"]["path"], built["reboot"]["trust"]]
        split = subprocess.run(command, capture_output=True, text=True, check=True, cwd=PROJECT)
        notes.append(f"reboot: {split.stdout.strip()}")
    if "many" in built:
        many = capana_row("many", built["many"], args.out)
        rows.append(many)
    if "sequential" in built:
        one_by_one = capana_row("sequential", built["sequential"], args.out)
        rows.append(one_by_one)
        if "many" in built:
            ratio = many.packets_per_s / one_by_one.packets_per_s
            notes.append(
                f"many connections: all open at once runs at {ratio:.2f}x the packets/s of the "
                "same connections one after another (target: no fall-off, ~1.0)"
            )
    if "files" in built:
        files, note = files_row(built["files"], args.out)
        rows.append(files)
        notes.append(note)
    if "jobs" in built:
        one, two = jobs_rows(built["jobs"], me, args.out)
        rows += [one, two]
        notes.append(f"--jobs: 2 processes {one.wall / two.wall:.2f}x faster than 1")
        pooled, note = executor_row(built["jobs"], me, args.out)
        rows += [pooled] if pooled else []
        notes.append(note)
    notes.append(f"load average after: {os.getloadavg()[0]:.2f}")
    return rows, notes


def startup_rows(no_tshark: bool, runs: int) -> tuple[list[Row], str]:
    """``capana scan`` and ``tshark -r`` on a small capture: interpreter start and imports.

    Each command runs ``runs`` times after one warm-up; the row keeps the median wall time (the
    machine is shared). Python may write its bytecode cache, as it does for a user: with
    PYTHONDONTWRITEBYTECODE set, every start would compile capana's modules again (~70 ms).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    capture = {"path": str(SMALL_CAPTURE), "packets": plain_loop(str(SMALL_CAPTURE))}
    commands = {"capana scan (start-up)": [sys.executable, "-m", "capana", "scan", capture["path"]]}
    if shutil.which("tshark") and not no_tshark:
        commands["tshark -r (start-up)"] = ["tshark", "-r", capture["path"]]
    rows = []
    for method, command in commands.items():
        measure(method, capture, command, env=env)  # warm-up: bytecode and page cache
        runs_made = sorted(
            (measure(method, capture, command, env=env) for _ in range(runs)),
            key=lambda row: row.wall,
        )
        row = runs_made[len(runs_made) // 2]
        row.check = f"median of {runs}, {runs_made[0].wall:.2f}..{runs_made[-1].wall:.2f} s"
        rows.append(row)
    if len(rows) < 2:
        return rows, "start-up: tshark not run, no comparison"
    ours, shark = rows
    verdict = "met" if ours.wall <= shark.wall else "not met"
    return rows, (
        f"start-up on {capture['packets']} packets: capana {ours.wall * 1e3:.0f} ms, tshark "
        f"{shark.wall * 1e3:.0f} ms, {ours.wall / shark.wall:.2f}x (target <= 1: {verdict})"
    )


def scapy_row(big: dict, out: Path, me: list[str]) -> Row:
    """scapy on the first SCAPY_SLICE packets (written out as their own pcap)."""
    source = Path(big["path"])
    target = out / f"slice-{SCAPY_SLICE}.pcap"
    header = struct.Struct("<IIII")
    with source.open("rb") as reader, target.open("wb") as writer:
        writer.write(reader.read(24))
        for _ in range(SCAPY_SLICE):
            record = reader.read(16)
            writer.write(record + reader.read(header.unpack(record)[2]))
    row = measure("scapy TCPSession+TLS (slice)", big, [*me, "--scapy-slice", str(target)])
    row.packets = SCAPY_SLICE
    row.megabytes = target.stat().st_size / 1e6
    row.capture = target.name
    return row


def jobs_rows(jobs: dict, me: list[str], out: Path) -> list[Row]:
    """A folder of captures with one process then two: ``capana scan --jobs N`` when it exists,
    else a ``multiprocessing.Pool`` over ``capana.analyze``."""
    usage = subprocess.run(
        [sys.executable, "-m", "capana", "scan", "--help"], capture_output=True, text=True
    ).stdout
    rows = []
    for processes in (1, 2):
        if "--jobs" in usage:
            row = capana_row(f"jobs{processes}", jobs, out, ["--jobs", str(processes)])
            row.method = f"capana scan --jobs {processes}"
        else:
            command = [*me, "--jobs-worker", jobs["path"], jobs["trust"], str(processes)]
            row = measure(f"analyze() in {processes} process(es)", jobs, command)
            row.check = "multiprocessing.Pool over capana.analyze (no --jobs yet)"
        rows.append(row)
    return rows


def executor_row(jobs: dict, me: list[str], out: Path) -> tuple[Row | None, str]:
    """``capana.analyze(folder, executor=ProcessPoolExecutor(2))``, checked like the CLI rows;
    skipped with a note while ``capana.analyze`` takes no ``executor``."""
    probe = "import capana, inspect; print(*inspect.signature(capana.analyze).parameters)"
    parameters = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=PROJECT
    ).stdout.split()
    if "executor" not in parameters:
        return None, "executor: skipped, capana.analyze has no executor parameter yet"
    result = out / "executor.jsonl"
    command = [*me, "--executor-worker", jobs["path"], jobs["trust"], "2", str(result)]
    row = measure("analyze(executor=ProcessPoolExecutor(2))", jobs, command)
    row.check = check(jobs, result)
    return row, f"executor: ProcessPoolExecutor(2) took {row.wall:.2f} s"


def print_table(rows: list[Row], notes: list[str]) -> None:
    head = "| method | capture | packets | MB | wall s | packets/s | MB/s | peak RSS MB | check |"
    print("\n" + head + "\n|" + "---|" * 9)
    for r in rows:
        print(
            f"| {r.method} | {r.capture} | {r.packets:,} | {r.megabytes:.0f} | {r.wall:.2f} | "
            f"{r.packets_per_s:,.0f} | {r.mb_per_s:.0f} | {r.rss_mb:.0f} | {r.check} |"
        )
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    sys.exit(main())
