"""The differential harness: a world's stores for real, a real hub, every channel, model vs hub.

``run(seed, n_docs, tmp)`` builds the world of ``seed`` (tests.differential.world), serves it —
SQLite stores through the importer, the SLTD-style HTTP service, national nodes over gRPC (one
serving a SQL store, one that is down, one that hangs, one that describes another state, one
whose results echo another key) — starts hubs over it in three configurations (everything up;
the required SLTD-style store down; the store optional and down with ``on_incomplete = "board"``),
sends ``n_docs`` generated documents through CheckDocument (fields and MRZ), CheckManifest and
CheckPaxlst, and compares every answer with the reference model. A disagreement is reported with a
class (what differs, expected -> got, the generator's scenario) and a reproducer.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc

from tests.differential.judge import _name, compare, describe
from tests.differential.model import STATES, Doc, Expected, expect
from tests.differential.world import ISSUERS, SLTD_TYPES, Case, World, build_world, make_case

PHASES: dict[str, dict[str, Any]] = {
    # name: (SLTD behaviour, SLTD required, on_incomplete)
    "all_up": {"sltd": "ok", "required": True, "on_incomplete": "contact"},
    "sltd_down": {"sltd": "down", "required": True, "on_incomplete": "contact"},
    "sltd_optional_down_board": {"sltd": "down", "required": False, "on_incomplete": "board"},
}
#: What happened in a phase before its documents were sent (printed with its reproducers).
PHASE_NOTES = {
    "all_up": "before the documents: 8 PHL checks by callers with a 4 ms deadline of their own",
    "sltd_down": "the required SLTD-style store is unreachable",
    "sltd_optional_down_board": "the SLTD-style store is optional and unreachable; "
    'on_incomplete = "board"',
}
#: Share of the documents each phase gets.
PHASE_SHARE = {"all_up": 0.6, "sltd_down": 0.2, "sltd_optional_down_board": 0.2}
CHANNELS = ("fields", "mrz", "manifest", "manifest_mrz", "paxlst")
DEADLINE_MS = 2000  # generous: a loaded CI machine must not turn a healthy store into TIMEOUT


@dataclass
class Disagreement:
    cls: str
    case: Case
    phase: str
    expected: Expected
    got: str
    seed: int

    def reproducer(self, world: World) -> str:
        d = self.case.doc
        from tests.differential.model import normalise_number, normalise_state

        state = normalise_state(d.state_raw) or d.state_raw
        key = (state, normalise_number(d.number_raw))
        held = {p: repr(s[key]) for p, s in world.stores.items() if key in s}
        return "\n".join([
            f"  seed={self.seed} phase={self.phase} ({PHASE_NOTES[self.phase]}) "
            f"channel={self.case.channel} tag={self.case.tag}",
            f"  sent: state={d.state_raw!r} number={d.number_raw!r} code={self.case.code!r} "
            f"holder={d.holder!r}" + (f" mrz={list(self.case.mrz)!r}" if self.case.mrz else ""),
            f"  stores: {held or 'none'}; sltd: {world.sltd.get(key, 'none')!r}",
            f"  expected: {self.expected.verdict}/{self.expected.directive} "
            f"outcomes={ {k: sorted(v) for k, v in self.expected.outcomes.items()} } "
            f"answers={dict(self.expected.answers)} consulted={self.expected.issuer_consulted}",
            f"  got: {self.got}",
        ])  # fmt: skip


@dataclass
class Report:
    seed: int
    documents: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    disagreements: list[Disagreement] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    world: World | None = None
    #: Healthy providers that failed (timed out under load, or refused by a breaker that such
    #: timeouts opened): the documents were judged with them failed. Not a disagreement.
    load_failures: Counter[str] = field(default_factory=Counter)

    def classes(self) -> Counter[str]:
        return Counter(d.cls for d in self.disagreements)

    def summary(self, examples: int = 1) -> str:
        assert self.world is not None
        lines = [
            f"seed {self.seed}: {self.documents} documents {dict(self.by_channel)}, "
            f"{len(self.disagreements)} disagreements in {len(self.classes())} classes, "
            f"{len(self.errors)} unexpected RPC errors; healthy providers failed under load: "
            f"{dict(self.load_failures) or 'none'}"
        ]
        shown: Counter[str] = Counter()
        for cls, n in self.classes().most_common():
            lines.append(f"- [{n}] {cls}")
            for d in self.disagreements:
                if d.cls == cls and shown[cls] < examples:
                    shown[cls] += 1
                    lines.append(d.reproducer(self.world))
        lines += [f"! {e}" for e in self.errors[:20]]
        return "\n".join(lines)


# -- the real stores ---------------------------------------------------------------------------

CSV_HEADER = (
    "issuing_state,document_number,document_type,status,reported_on,record_ref,"
    "surname,given_names,birth_date,sex,expiry_date\n"
)


async def _sql_store(tmp: Path, name: str, world: World, states: Sequence[str]) -> str:
    from adapters.sqlstore.importer import import_csv

    rows = []
    for state in states:
        for (s, n), r in world.stores.get(state, {}).items():
            h = r.holder
            rows.append(
                f"{s},{n},{r.type_code},{r.status},,{name}-{n},"
                + (
                    f"{h.surname},{h.given_names},{h.birth_date},{h.sex},2031-01-01"
                    if h
                    else ",,,,"
                )
            )
    (tmp / f"{name}.csv").write_text(CSV_HEADER + "\n".join(rows) + "\n")
    url = f"sqlite+aiosqlite:///{tmp / name}.db"
    report = await import_csv(url, tmp / f"{name}.csv")
    assert report.rejected == (), report.rejected
    return url


def _dead_target() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _liar_servicer(provider: Any) -> Any:
    """A real node's servicer whose results echo another key than the one asked."""
    from rmas.remote.node import ProviderService

    class WrongKey(ProviderService):
        async def LookupBatch(self, request: Any, context: Any) -> Any:
            out = await super().LookupBatch(request, context)
            for i, res in enumerate(out.results):
                item = request.items[i].document
                if i % 2:
                    res.issuing_state, res.number = "MYS", item.number
                else:
                    res.issuing_state, res.number = item.issuing_state, item.number + "7"
            return out

    return WrongKey(provider)


@dataclass
class Served:
    """Addresses of the world's running parts (they outlive the hubs of the phases)."""

    urls: dict[str, str]
    sltd_url: str
    nodes: dict[str, str]


@asynccontextmanager
async def serve_world(world: World, tmp: Path) -> AsyncIterator[Served]:
    from adapters.sltd.service import ServiceConfig, start_service
    from adapters.sqlstore.provider import SqlStoreProvider
    from rmas.providers import ProviderInfo
    from rmas.remote.node import ProviderNode
    from rmas.testing import FakeProvider
    from rmas.v1 import provider_pb2_grpc

    urls = {s: await _sql_store(tmp, s.lower(), world, [s]) for s in ("NZL", "AUS")}
    urls["PHL"] = await _sql_store(tmp, "phl", world, ["PHL"])
    urls["MEX"] = await _sql_store(tmp, "mex", world, ["MEX", "CAN"])
    urls["SGP"] = await _sql_store(tmp, "sgp", world, ["SGP"])
    async with AsyncExitStack() as stack:
        svc = await start_service(
            f"sqlite+aiosqlite:///{tmp / 'sltd.db'}", ServiceConfig({"hub-token": "NZ"})
        )
        stack.push_async_callback(svc.close)
        await svc.store.bulk_load([
            {"country": STATES[s], "doc_type": SLTD_TYPES[r.type_code], "number": n,
             "status": _to_sltd(r.status), "reporting_country": STATES[s]}
            for (s, n), recs in world.sltd.items() for r in recs
        ])  # fmt: skip
        nodes: dict[str, str] = {"USA": _dead_target()}
        phl = SqlStoreProvider(ProviderInfo(id="PHL", issuing_states=frozenset({"PHL"})),
                               urls["PHL"])  # fmt: skip
        mex = SqlStoreProvider(ProviderInfo(id="MEX", issuing_states=frozenset({"MEX"})),
                               urls["MEX"])  # fmt: skip
        hang = FakeProvider.issuer("JPN", ["JPN"], failure="hang")
        for state, prov in (("PHL", phl), ("CAN", mex), ("JPN", hang)):
            node = ProviderNode(prov, "127.0.0.1:0")
            await node.start()
            stack.push_async_callback(node.stop, 0)
            stack.push_async_callback(prov.aclose)
            nodes[state] = f"127.0.0.1:{node.port}"
        sgp = SqlStoreProvider(ProviderInfo(id="SGP", issuing_states=frozenset({"SGP"})),
                               urls["SGP"])  # fmt: skip
        liar = grpc.aio.server()
        provider_pb2_grpc.add_DocumentStatusProviderServicer_to_server(_liar_servicer(sgp), liar)
        port = liar.add_insecure_port("127.0.0.1:0")
        await liar.start()
        stack.push_async_callback(liar.stop, 0)
        stack.push_async_callback(sgp.aclose)
        nodes["SGP"] = f"127.0.0.1:{port}"
        yield Served(urls, svc.url, nodes)


def _to_sltd(status: str) -> str:
    return "INVALIDATED" if status == "INVALID" else status


def hub_providers(served: Served, phase: str) -> list[Any]:
    """Fresh provider objects for one hub (a hub closes its providers when it stops)."""
    from adapters.sltd.adapter import SltdProvider
    from adapters.sqlstore.provider import SqlStoreProvider
    from rmas.providers import ProviderInfo, Registry, Scope
    from rmas.remote.client import RemoteProvider

    def info(state: str) -> ProviderInfo:
        return ProviderInfo(id=state, issuing_states=frozenset({state}))

    provs: list[Any] = [
        SqlStoreProvider(info("NZL"), served.urls["NZL"]),
        SqlStoreProvider(info("AUS"), served.urls["AUS"], registry=Registry.COMPLETE),
    ]
    for state in ("PHL", "USA", "JPN", "CAN", "SGP"):
        provs.append(RemoteProvider(info(state), served.nodes[state]))
    cfg = PHASES[phase]
    url = served.sltd_url if cfg["sltd"] == "ok" else f"http://{_dead_target()}"
    sltd_info = ProviderInfo(id="SLTD", scope=Scope.GLOBAL, required=cfg["required"])
    provs.append(SltdProvider(sltd_info, url, "hub-token"))
    return provs


# -- channels ----------------------------------------------------------------------------------

_FIELD_ENUM = {"P": 1, "I": 2, "V": 3, "": 0, "OTHER": 4}


def _document_pb(d: Doc) -> Any:
    from rmas.v1 import common_pb2

    doc = common_pb2.Document(issuing_state=d.state_raw, number=d.number_raw)
    doc.type = _FIELD_ENUM[d.type_code]  # type: ignore[assignment]
    if d.holder is not None:
        h = d.holder
        doc.holder.surname = h.surname
        doc.holder.given_names = h.given_names
        doc.holder.birth_date = h.birth_date.isoformat() if h.birth_date else ""
        doc.holder.sex = h.sex
    return doc


async def _fields_or_mrz(stub: Any, case: Case) -> Any:
    from rmas.v1 import check_pb2

    if case.mrz:
        req = check_pb2.CheckDocumentRequest(mrz_lines=list(case.mrz))
    else:
        req = check_pb2.CheckDocumentRequest(document=_document_pb(case.doc))
    return (await stub.CheckDocument(req, timeout=10)).result


def _traveller(i: int, case: Case, out: Any) -> None:
    t = out.travellers.add(ref=f"t{i}")
    if case.mrz:
        t.mrz_lines.extend(case.mrz)
    else:
        t.document.CopyFrom(_document_pb(case.doc))


def paxlst_message(cases: Sequence[Case], ref: str) -> bytes:
    """A PAXLST interchange with one traveller per case (its DOC code, number and state as
    generated; holder from NAD/ATT/DTM+329)."""
    from rmas.iapi.syntax import DEFAULT_SEPARATORS, write_segments

    body: list[Any] = [
        ["BGM", "745"],
        ["NAD", "MS", "", "", "RMAS DIFFERENTIAL"],
        ["TDT", "20", "ZZ1", "", "", ["ZZ"]],
        ["LOC", "125", "AKL"],
        ["DTM", ["189", "2612011030", "201"]],
        ["LOC", "87", "SYD"],
        ["DTM", ["232", "2612011300", "201"]],
    ]
    for i, c in enumerate(cases):
        h = c.doc.holder
        body.append(["NAD", "FL", "", "", [h.surname if h and h.surname else "DOE",
                                          h.given_names if h else "", ""]])  # fmt: skip
        if h and h.sex:
            body.append(["ATT", "2", "", h.sex])
        if h and h.birth_date:
            body.append(["DTM", ["329", h.birth_date.strftime("%y%m%d")]])
        body.append(["RFF", ["ABO", f"P{i}"]])
        body.append(["DOC", [c.code, "110", "111"], c.doc.number_raw])
        body.append(["DTM", ["36", "310101"]])
        body.append(["LOC", "91", c.doc.state_raw])
    body.append(["CNT", ["42", str(len(cases))]])
    segs: list[Any] = [
        ["UNB", ["UNOC", "4"], "DIFFAIR", "RMASHUB", ["261201", "0900"], ref],
        ["UNH", "M1", ["PAXLST", "D", "05B", "UN", "IATA"]],
        *body,
        ["UNT", str(len(body) + 2), "M1"],
        ["UNZ", "1", ref],
    ]
    return write_segments(segs, DEFAULT_SEPARATORS).encode("latin-1")


def paxlst_case_ok(case: Case) -> bool:
    """Whether a case can travel in a PAXLST as generated (EDIFACT has no empty DOC number
    distinct from a missing one, and a space-only state is an absent LOC)."""
    return "'" not in case.doc.number_raw and "?" not in case.doc.number_raw


# -- running -----------------------------------------------------------------------------------


async def run_phase(
    served: Served,
    world: World,
    phase: str,
    cases: Sequence[Case],
    report: Report,
    *,
    concurrency: int = 24,
) -> None:
    from rmas.testing import running_hub
    from rmas.v1 import check_pb2, check_pb2_grpc

    cfg = PHASES[phase]
    specs = world.specs(sltd=cfg["sltd"], sltd_required=cfg["required"])
    pol = cfg["on_incomplete"]

    answers: list[tuple[Case, Any, Any]] = []  # (case, CheckResult, PassengerDirective)

    def judge(case: Case, result: Any, passenger: Any, slow: frozenset[str]) -> None:
        got = describe(result)
        # A healthy provider that timed out under load (or whose breaker opened after such
        # timeouts) failed for real: judge the verdict with it failed; count it apart.
        failed = {
            pid for pid, (outcome, _, _) in got["sources"].items()
            if pid in healthy and (outcome == "TIMEOUT" or (outcome == "UNAVAILABLE"
                                                            and pid in slow))
        }  # fmt: skip
        sp = [replace(x, behaviour="hang") if x.id in failed else x for x in specs]
        for pid in failed:
            report.load_failures[pid] += 1
        e = expect(sp, case.doc, pol)
        classes = compare(e, got, case)
        if passenger is not None and not classes:
            directive = _name(check_pb2.Directive, passenger.directive, "DIRECTIVE_")
            if directive != e.directive:
                classes.append(f"passenger directive {e.directive} -> {directive} [paxlst]")
            if passenger.unchecked != e.unchecked:
                classes.append(f"passenger unchecked {e.unchecked} -> {passenger.unchecked} "
                               "[paxlst]")  # fmt: skip
        for cls in classes:
            report.disagreements.append(
                Disagreement(cls, case, phase, e, json.dumps(got, default=str), report.seed)
            )

    healthy = {x.id for x in specs if x.behaviour == "ok"}
    by: dict[str, list[Case]] = {c: [] for c in CHANNELS}
    for c in cases:
        by[c.channel].append(c)
    async with (
        running_hub(hub_providers(served, phase), deadline_ms=DEADLINE_MS,
                    on_incomplete=pol) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):  # fmt: skip
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        sem = asyncio.Semaphore(concurrency)

        async def one(case: Case) -> None:
            async with sem:
                e = expect(specs, case.doc, pol)
                try:
                    result = await _fields_or_mrz(stub, case)
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    if code == grpc.StatusCode.INVALID_ARGUMENT and e.verdict == "INVALID_DATA" \
                            and not e.outcomes:  # fmt: skip
                        return
                    if code == grpc.StatusCode.INVALID_ARGUMENT:
                        report.disagreements.append(Disagreement(
                            f"refused as INVALID_ARGUMENT, expected {e.verdict} "
                            f"[{case.channel}/{case.tag}]",
                            case, phase, e, exc.details() or "", report.seed))  # fmt: skip
                        return
                    report.errors.append(f"{phase} {case.channel}: {code.name} {exc.details()}")
                    return
                if e.verdict == "INVALID_DATA" and not e.outcomes:
                    report.disagreements.append(Disagreement(
                        f"answered, expected INVALID_ARGUMENT [{case.channel}/{case.tag}]",
                        case, phase, e, json.dumps(describe(result), default=str), report.seed,
                    ))  # fmt: skip
                    return
                answers.append((case, result, None))

        async def manifest(batch: list[Case]) -> None:
            req = check_pb2.CheckManifestRequest()
            req.flight.carrier, req.flight.number = "ZZ", "1"
            for i, c in enumerate(batch):
                _traveller(i, c, req)
            async with sem:
                try:
                    resp = await stub.CheckManifest(req, timeout=10)
                except grpc.aio.AioRpcError as exc:
                    report.errors.append(f"{phase} manifest: {exc.code().name} {exc.details()}")
                    return
            answers.extend((c, r, None) for c, r in zip(batch, resp.results, strict=True))

        async def paxlst(batch: list[Case], ref: str) -> None:
            msg = paxlst_message(batch, ref)
            async with sem:
                try:
                    resp = await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=msg),
                                                  timeout=10)  # fmt: skip
                except grpc.aio.AioRpcError as exc:
                    report.errors.append(f"{phase} paxlst: {exc.code().name} {exc.details()}")
                    return
            if resp.errors:
                report.errors.append(f"{phase} paxlst message refused: {list(resp.errors)[:3]}")
                return
            results = list(resp.results)
            if len(results) != len(batch):
                report.errors.append(f"{phase} paxlst: {len(results)} results for {len(batch)}")
                return
            answers.extend(zip(batch, results, resp.passengers, strict=True))

        if phase == "all_up":
            await _impatient_callers(stub, world)
        jobs = [one(c) for c in by["fields"] + by["mrz"]]
        for chan in ("manifest", "manifest_mrz"):
            lst = by[chan]
            jobs += [manifest(lst[i : i + 60]) for i in range(0, len(lst), 60)]
        px = by["paxlst"]
        jobs += [paxlst(px[i : i + 40], f"{phase[:4].upper()}{report.seed % 10**6}{i}")
                 for i in range(0, len(px), 40)]  # fmt: skip
        await asyncio.gather(*jobs)
    from rmas.v1 import check_pb2 as pb

    slow = frozenset(
        a.provider_id for _, r, _ in answers for a in r.sources
        if a.provider_id in healthy and a.outcome == pb.OUTCOME_TIMEOUT
    )  # fmt: skip
    for case, result, passenger in answers:
        judge(case, result, passenger, slow)
    for c in cases:
        report.by_channel[c.channel] += 1
    report.documents += len(cases)


async def _impatient_callers(stub: Any, world: World) -> None:
    """Callers whose own deadline is too short (``rmas check --timeout 0.004``): their cancelled
    checks are not the node's failures, so the healthy PHL node must go on answering (the model
    expects ANSWERED from it in every check that follows)."""
    from rmas.v1 import check_pb2, common_pb2

    numbers = [n for (_, n) in list(world.stores["PHL"])[:8]]
    for n in numbers:
        req = check_pb2.CheckDocumentRequest(
            document=common_pb2.Document(issuing_state="PHL", number=n)
        )
        with suppress(grpc.aio.AioRpcError):
            await stub.CheckDocument(req, timeout=0.004)


async def run(seed: int, n_docs: int, tmp: Path, *, world: World | None = None) -> Report:
    """Build the world of ``seed``, serve it, and send ``n_docs`` documents across the phases."""
    world = world or build_world(seed)
    report = Report(seed, world=world)
    rng = random.Random(seed * 7919 + 1)
    async with serve_world(world, tmp) as served:
        for phase, share in PHASE_SHARE.items():
            n = max(1, int(n_docs * share))
            cases = []
            while len(cases) < n:
                c = make_case(rng, world, rng.choice(CHANNELS))
                if c.channel == "paxlst" and not paxlst_case_ok(c):
                    continue
                cases.append(c)
            await run_phase(served, world, phase, cases, report)
    return report


__all__ = ["ISSUERS", "PHASES", "Report", "run"]
