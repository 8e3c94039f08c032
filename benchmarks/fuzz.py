"""``make fuzz``: the differential harness at scale, then mutated PAXLST and MRZ at a running hub.

    make fuzz                      # FUZZ_N=100000: 100,000 of each (about 30-60 min on 2 cores)
    FUZZ_N=5000 make fuzz          # a smaller run
    FUZZ_SEED=7 make fuzz          # other worlds and mutations (default 1)
    FUZZ_STATE=.fuzz/state.json    # progress file: a rerun resumes where the last one stopped

Three parts, each counted and reported:

1. **differential** — ``tests.differential`` in chunks of 5,000 documents, each chunk a new world
   (seed = FUZZ_SEED * 1000 + chunk): the reference model against in-process hubs with real stores.
   Disagreements are counted by class; the first reproducer of each class is printed.
2. **paxlst** — the PAXLST fixtures mutated byte-wise (flips, insertions and deletions of bytes and
   separators, release characters, runs of digits, truncation, non-ASCII) and segment-wise (drop,
   duplicate, swap, shuffle, element edits, counts of thousands of digits), sent to a hub started as
   its own process (``rmas serve``: SQL stores, a complete registry, a global store).
3. **mrz** — golden zones and freshly composed ones mutated (characters, case, lengths, line
   counts, control and non-ASCII characters, swapped lines), sent as ``CheckDocument.mrz_lines``.

An *unhandled exception* is any of: a status other than OK / INVALID_ARGUMENT (UNKNOWN,
INTERNAL, RESOURCE_EXHAUSTED from a hub without rate limits...), a hub process that died, or a
traceback / ``exception`` field in the hub's log. The exit status is 1 when any count is not 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 5000
#: What a hub without rate limits may answer to any input (RESOURCE_EXHAUSTED is not among them:
#: the fuzzed hub has no rate limit, so it can only mean an answer that outgrew a gRPC limit).
OK_CODES = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}


def _state_load(path: Path) -> dict[str, Any]:
    if path.exists():
        return dict(json.loads(path.read_text()))
    return {}


def _state_save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    tmp.replace(path)


# -- 1. differential ---------------------------------------------------------------------------


async def differential(n: int, seed: int, state: dict[str, Any], save: Any) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.differential.harness import run

    part = state.setdefault(
        "differential", {"documents": 0, "chunks": 0, "classes": {}, "errors": 0, "examples": {}}
    )
    while part["documents"] < n:
        chunk = part["chunks"]
        size = min(CHUNK, n - part["documents"])
        with tempfile.TemporaryDirectory() as d:
            t0 = time.monotonic()
            report = await run(seed * 1000 + chunk, size, Path(d))
        assert report.world is not None
        for cls, k in report.classes().items():
            part["classes"][cls] = part["classes"].get(cls, 0) + k
        for dis in report.disagreements:
            part["examples"].setdefault(dis.cls, dis.reproducer(report.world))
        part["errors"] += len(report.errors)
        for pid, k in report.load_failures.items():
            part.setdefault("load_failures", {})
            part["load_failures"][pid] = part["load_failures"].get(pid, 0) + k
        part["documents"] += report.documents
        part["chunks"] += 1
        save()
        print(f"differential: chunk {chunk} {report.documents} documents in "
              f"{time.monotonic() - t0:.0f} s, {len(report.disagreements)} disagreements "
              f"({part['documents']}/{n})", flush=True)  # fmt: skip
    return dict(part)


# -- a hub as a process ------------------------------------------------------------------------


async def _stores(tmp: Path) -> str:
    from adapters.sqlstore.importer import import_csv

    out = []
    for name, registry in (("nzl", "alerts"), ("aus", "complete"), ("phl", "alerts")):
        url = f"sqlite+aiosqlite:///{tmp / name}.db"
        await import_csv(url, ROOT / "fixtures" / "records" / f"{name}.csv")
        out.append(
            f'[[providers]]\nid = "{name.upper()}"\nkind = "sql"\nurl = "{url}"\n'
            f'issuing_states = ["{name.upper()}"]\nregistry = "{registry}"\n'
        )
    out.append(
        '[[providers]]\nid = "GLOBAL"\nkind = "fake"\nscope = "global"\nrequired = true\n'
        'records = { "NZL:LA777777" = "STOLEN", "PHL:P1234567A" = "LOST" }\n'
    )
    return "\n".join(out)


def _spawn(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


class Hub:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.log = tmp / "hub.log"
        self.proc: Any = None
        self.port = 0
        self.starts = 0

    async def start(self) -> None:
        """``rmas serve`` as a process, its stdout and stderr going to ``hub.log`` (a pipe nobody
        reads would fill up with log lines and stop the hub)."""
        sys.path.insert(0, str(ROOT))
        from tests.hubproc import free_port

        self.port = free_port()
        cfg = self.tmp / "hub.toml"
        cfg.write_text(
            f'[hub]\nlisten = "127.0.0.1:{self.port}"\ndeadline_ms = 1500\n'
            f"max_manifest = 1000\n\n{await _stores(self.tmp)}"
        )
        self.proc = await asyncio.to_thread(_spawn, cfg, self.log)
        self.starts += 1
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited: {self.log.read_text(errors='replace')[-3000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"hub did not listen on {self.port}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def log_faults(text: str) -> list[str]:
    """Lines of a hub's log that show an unhandled exception."""
    bad = []
    for line in text.splitlines():
        if (
            "Traceback (most recent call last)" in line
            or '"exception"' in line
            or (line.startswith("{") and '"level": "critical"' in line)
        ):
            bad.append(line[:500])
    return bad


async def _blast(
    hub: Hub,
    name: str,
    n: int,
    state: dict[str, Any],
    save: Any,
    *,
    make: Any,
    send: Any,
    concurrency: int = 16,
) -> dict[str, Any]:
    part = state.setdefault(name, {"inputs": 0, "statuses": {}, "unhandled": 0, "examples": []})
    rng = random.Random(f"{state['seed']}:{name}:{part['inputs']}")
    statuses: Counter[str] = Counter(part["statuses"])
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{hub.port}",
        options=[("grpc.max_receive_message_length", 64 << 20),
                 ("grpc.max_send_message_length", 64 << 20)],
    ) as ch:  # fmt: skip
        sem = asyncio.Semaphore(concurrency)

        async def one(payload: Any) -> None:
            async with sem:
                code, detail = await send(ch, payload)
            statuses[code.name] += 1
            part["max_detail"] = max(part.get("max_detail", 0), len(detail))
            if len(detail) > 16_384:  # error texts stay bounded whatever the input's size
                code = grpc.StatusCode.UNKNOWN
            if code not in OK_CODES:
                part["unhandled"] += 1
                if len(part["examples"]) < 10:
                    part["examples"].append(f"{code.name} {detail[:200]} <- {payload!r}"[:2000])

        while part["inputs"] < n:
            batch = min(2000, n - part["inputs"])
            await asyncio.gather(*(one(make(rng)) for _ in range(batch)))
            part["inputs"] += batch
            part["statuses"] = dict(statuses)
            if not hub.alive():
                part["unhandled"] += 1
                part["examples"].append(f"hub process died (exit {hub.proc.poll()})")
                save()
                await hub.start()
            save()
            print(f"{name}: {part['inputs']}/{n}, unhandled {part['unhandled']}, "
                  f"{dict(statuses)}", flush=True)  # fmt: skip
    return dict(part)


# -- 2. PAXLST mutations -----------------------------------------------------------------------


def paxlst_corpus() -> list[bytes]:
    files = sorted((ROOT / "fixtures" / "paxlst").glob("*.edi"))
    return [f.read_bytes() for f in files]


#: Bytes worth inserting: separators, release, tags, digits, and Latin-1 characters Python calls
#: digits although int() refuses them (superscripts), controls and letters with accents.
_EDI_BYTES = b"+:'?*.UNHBGMDOCNADLOC0123456789 \r\n\x00\xff\xe9\xb2\xb3\xb9\xbc"


def mutate_paxlst(rng: random.Random, corpus: list[bytes]) -> bytes:
    # The 480-passenger manifest is checked in full each time: send it rarely.
    small = [c for c in corpus if len(c) < 10_000]
    msg = rng.choice(corpus) if rng.random() < 0.01 else rng.choice(small)
    ref = f"F{rng.randrange(10**9)}".encode()
    for _ in range(rng.choice([1, 1, 2, 3, 5])):
        msg = (_segment_mutation if rng.random() < 0.5 else _byte_mutation)(rng, msg)
    # Most mutants get a fresh interchange reference, so they are checked, not answered as resends.
    if rng.random() < 0.9:
        msg = msg.replace(b"ICR0001", ref).replace(b"ICR0002", ref)
    return msg


def _byte_mutation(rng: random.Random, msg: bytes) -> bytes:
    if not msg:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(msg))
    op = rng.randrange(8)
    if op == 0:
        return msg[:i] + bytes([rng.randrange(256)]) + msg[i + 1 :]
    if op == 1:
        return msg[:i] + bytes([rng.choice(_EDI_BYTES)]) + msg[i:]
    if op == 2:
        return msg[:i] + msg[i + rng.randint(1, 20) :]
    if op == 3:
        return msg[:i]
    if op == 4:
        j = rng.randrange(len(msg))
        return msg[:i] + msg[j : j + rng.randint(1, 200)] + msg[i:]
    if op == 5:
        return msg[:i] + b"9" * rng.choice([10, 100, 5000]) + msg[i:]
    if op == 6:
        return msg[:i] + b"?" + msg[i:]
    return msg.replace(b"'", rng.choice([b"'\r\n", b"''", b"'\n\n", b"~"]), rng.randint(1, 50))


def _segment_mutation(rng: random.Random, msg: bytes) -> bytes:
    segs = msg.split(b"'")
    if len(segs) < 2:
        return _byte_mutation(rng, msg)
    i = rng.randrange(len(segs))
    op = rng.randrange(8)
    if op == 0:
        del segs[i]
    elif op == 1:
        segs.insert(i, segs[i])
    elif op == 2:
        j = rng.randrange(len(segs))
        segs[i], segs[j] = segs[j], segs[i]
    elif op == 3:
        body = segs[2:-3]
        rng.shuffle(body)
        segs = segs[:2] + body + segs[-3:]
    elif op == 4:
        parts = segs[i].split(b"+")
        k = rng.randrange(len(parts))
        parts[k] = rng.choice([b"", b"9" * rng.choice([3, 50, 4000]), b"X" * 300, b":::",
                               b"\xb9" + str(rng.randrange(100)).encode(), b"1\xb2",
                               b"P:110:111", b"C", b"VS", b"\xc3\xa9", b"??"])  # fmt: skip
        segs[i] = b"+".join(parts)
    elif op == 5:
        segs[i] = segs[i] + b"+" + b"+".join([b"Z"] * rng.randint(1, 40))
    elif op == 6:
        extra = [
            b"DOC+P:110:111+" + str(rng.randrange(10**8)).encode(),
            b"LOC+91+QQQ",
            b"DTM+329:999999",
            b"CNT+42:" + b"7" * rng.choice([2, 4000]),
            b"NAD+FL+++A",
        ]
        segs.insert(i, rng.choice(extra))  # fmt: skip
    else:
        segs = segs * rng.randint(2, 4)
    return b"'".join(segs)


async def _send_paxlst(ch: grpc.aio.Channel, msg: bytes) -> tuple[grpc.StatusCode, str]:
    from rmas.v1 import check_pb2, check_pb2_grpc

    try:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=msg), timeout=30
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    if not resp.cusres.startswith(b"UN"):  # every answer, even to garbage, is a CUSRES
        return grpc.StatusCode.UNKNOWN, f"no CUSRES in the answer: {resp.cusres[:80]!r}"
    return grpc.StatusCode.OK, ""


# -- 3. MRZ mutations --------------------------------------------------------------------------


def mrz_corpus() -> list[list[str]]:
    golden = json.loads((ROOT / "fixtures" / "mrz" / "golden.json").read_text())
    out = [list(c["lines"]) for c in golden["cases"] if c["lines"]]
    from rmas.mrz import Layout
    from rmas.testing import compose

    rng = random.Random(0)
    for layout in Layout:
        for code in ("P<", "I<", "ID", "AC", "C<", "V<", "VS"):
            out.append(compose(
                layout, document_code=code, issuing_state=rng.choice(["NZL", "AUS", "D", "UTO"]),
                surname="NGATA", given_names="HEMI", document_number=rng.choice(
                    ["LA000002", "PA9999999", "AB1234567890", "X1"]),
                nationality="NZL", birth_date="800101", sex=rng.choice("MF<"),
                expiry_date="310101",
            ))  # fmt: skip
    return out


_MRZ_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<<<<<<abz \t\x00\x7féÄ€\u200b-'."


def mutate_mrz(rng: random.Random, corpus: list[list[str]]) -> list[str]:
    lines = list(rng.choice(corpus))
    for _ in range(rng.choice([1, 1, 2, 4])):
        op = rng.randrange(9)
        if not lines:
            lines = [""]
        li = rng.randrange(len(lines))
        line = lines[li]
        i = rng.randrange(len(line) + 1)
        if op == 0 and line:
            lines[li] = line[:i] + rng.choice(_MRZ_CHARS) + line[i + 1 :]
        elif op == 1:
            lines[li] = line[:i] + rng.choice(_MRZ_CHARS) + line[i:]
        elif op == 2:
            lines[li] = line[:i]
        elif op == 3:
            del lines[li]
        elif op == 4:
            lines.append(rng.choice(rng.choice(corpus)))
        elif op == 5:
            lines = lines[::-1]
        elif op == 6:
            lines[li] = line.lower()
        elif op == 7:
            lines = ["\n".join(lines)]
        else:
            lines[li] = line + "<" * rng.choice([1, 10, 1000])
    if rng.random() < 0.002:
        lines = lines * 800  # a zone of thousands of lines
    return lines


async def _send_mrz(ch: grpc.aio.Channel, lines: list[str]) -> tuple[grpc.StatusCode, str]:
    from rmas.v1 import check_pb2, check_pb2_grpc

    try:
        await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_pb2.CheckDocumentRequest(mrz_lines=lines), timeout=30
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    except (ValueError, TypeError) as exc:  # not encodable by the client (never sent)
        return grpc.StatusCode.OK, f"client refused: {exc}"
    return grpc.StatusCode.OK, ""


# -- main --------------------------------------------------------------------------------------


async def main() -> int:
    n = int(os.environ.get("FUZZ_N", "100000"))
    seed = int(os.environ.get("FUZZ_SEED", "1"))
    path = Path(os.environ.get("FUZZ_STATE", str(ROOT / ".fuzz" / "state.json")))
    state = _state_load(path)
    if state.get("n") != n or state.get("seed") != seed:
        state = {"n": n, "seed": seed, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    state.setdefault("seconds", {})

    def save() -> None:
        _state_save(path, state)

    print(f"fuzz: FUZZ_N={n} FUZZ_SEED={seed} state {path}", flush=True)
    t0 = time.monotonic()
    diff = await differential(n, seed, state, save)
    state["seconds"].setdefault("differential", round(time.monotonic() - t0))
    with tempfile.TemporaryDirectory() as d:
        hub = Hub(Path(d))
        await hub.start()
        try:
            t1 = time.monotonic()
            corpus = paxlst_corpus()
            pax = await _blast(
                hub, "paxlst", n, state, save,
                make=lambda r: mutate_paxlst(r, corpus), send=_send_paxlst,
            )  # fmt: skip
            state["seconds"].setdefault("paxlst", round(time.monotonic() - t1))
            t2 = time.monotonic()
            zones = mrz_corpus()
            mrz = await _blast(hub, "mrz", n, state, save,
                               make=lambda r: mutate_mrz(r, zones), send=_send_mrz)  # fmt: skip
            state["seconds"].setdefault("mrz", round(time.monotonic() - t2))
        finally:
            hub.stop()
            text = hub.log.read_text(errors="replace")
            faults = log_faults(text)
            state["log_faults"] = state.get("log_faults", 0) + len(faults)
            state.setdefault("log_examples", []).extend(faults[:5])
            state["hub_starts"] = hub.starts
            save()
    disagreements = sum(diff["classes"].values())
    unhandled = diff["errors"] + pax["unhandled"] + mrz["unhandled"] + state["log_faults"]
    print("\n== fuzz summary ==")
    print(f"differential: {diff['documents']} documents, {disagreements} disagreements in "
          f"{len(diff['classes'])} classes, {diff['errors']} unexpected RPC errors; healthy "
          f"providers failed under load (judged as failed): "
          f"{diff.get('load_failures') or 'none'}")  # fmt: skip
    for cls, k in sorted(diff["classes"].items(), key=lambda x: -x[1]):
        print(f"  [{k}] {cls}\n{diff['examples'].get(cls, '')}")
    for name, part in (("paxlst", pax), ("mrz", mrz)):
        print(f"{name}: {part['inputs']} mutated inputs, statuses {part['statuses']}, "
              f"unhandled {part['unhandled']}, longest error text "
              f"{part.get('max_detail', 0)} characters")  # fmt: skip
        for ex in part["examples"][:5]:
            print(f"  {ex[:600]}")
    print(f"hub log: {state['log_faults']} tracebacks/exceptions; hub started {hub.starts} time(s)")
    for ex in state["log_examples"][:5]:
        print(f"  {ex}")
    print(f"seconds: {state['seconds']}")
    print(f"TOTAL: {disagreements} disagreements, {unhandled} unhandled exceptions")
    return 1 if disagreements or unhandled else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
