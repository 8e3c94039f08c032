"""Status changes end to end, through real change sources and real processes only.

An airline subscribed with ``rmas iapi watch --json`` (a process), a PAXLST sent with ``rmas
iapi`` (a process) answered OK_TO_BOARD, then the passport reported stolen at its source from
another process: ``rmas store apply`` on the hub's SQL store, on a national node's store
(``rmas provider serve``), or through the SLTD-style service's API (``rmas sltd serve``). The
airline then receives BGM+132 with 1Z for exactly that passenger, acknowledges it, and is not
sent it again. A passenger offloaded (XR), or on a flight closed (CLOB), or a passport replaced
(CP), is never sent one. Bulk loads at each source (changes lost: every open passenger checked
again), a change made while the hub or the node is down, a reload that moves the store, a stop
with a subscribed airline, an officer's override, and two hubs on PostgreSQL (the airline told
once) go through the same processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from adapters.sqlstore.importer import import_csv
from tests.flights.kit import WIREMU, Pax, departure, read_status_change
from tests.flights.procs import Watch, hub_config, rmas, send_paxlst, stop, store_apply
from tests.hubproc import free_port, serve

FIX = Path(__file__).resolve().parents[2] / "fixtures"

#: Passengers on NZL passports the demo store does not hold (OK_TO_BOARD at check-in).
NGATA = Pax("1002", "K7QF2B", "NGATA", "HINE", "900303", "LA920002")
PARATA = Pax("1004", "K7QF2D", "PARATA", "MERE", "850707", "LA920004")
HOHAIA = Pax("1005", "K7QF2E", "HOHAIA", "TAMATI", "790909", "LA920005")


def stolen(p: Pax, version: int = 10) -> dict[str, object]:
    return {
        "op": "upsert",
        "issuing_state": p.state,
        "number": p.number,
        "status": "STOLEN",
        "version": version,
        "reported_on": "2026-12-01",
        "record_ref": f"DIA-{p.abo}",
    }


def sql_store(tmp: Path, name: str) -> str:
    """A SQL store holding the demo's NZL records: its URL."""
    url = f"sqlite+aiosqlite:///{tmp / name}"
    asyncio.run(import_csv(url, FIX / "records/nzl.csv"))
    return url


def sql_provider(url: str) -> str:
    return f"""
[[providers]]
id = "NZL"
kind = "sql"
issuing_states = ["NZL"]
url = "{url}"
poll_interval = 0.1
"""


def ok_to_board(answer: dict[str, object], *passengers: Pax) -> None:
    got = {p["passenger_ref"]: p["directive"] for p in answer["passengers"]}  # type: ignore[attr-defined]
    assert got == {p.abo: "OK_TO_BOARD" for p in passengers}, got


def assert_do_not_board(change: dict[str, object], p: Pax, *, first: bool = True) -> None:
    """A status change to DO_NOT_BOARD for ``p`` on NZ103 (sent for the ``first`` time: the
    attempt counts sendings on every subscription of the airline)."""
    assert change["flight"] == "NZ103"
    assert (change["passenger_ref"], change["booking_ref"]) == (p.abo, p.avf)
    assert change["directive"] == "DO_NOT_BOARD"
    if first:
        assert change["attempt"] == 1


def receives_stolen_report(tmp: Path, target: str, report: object) -> None:
    """The conversation every source must hold: OK at check-in, stolen later, BGM+132 with 1Z
    for that passenger only, acknowledged (by ``rmas iapi watch``), never sent again."""
    watch = Watch(target)
    try:
        ok_to_board(send_paxlst(tmp, target, [WIREMU, NGATA]), WIREMU, NGATA)
        report()  # type: ignore[operator]
        change = watch.get()
        assert_do_not_board(change, NGATA)
        assert watch.nothing(4.0)  # 4 s > resend_initial_s + resend_max_s: acknowledged
        st = json.loads(rmas("status", "--hub", target, "--json").stdout)
        assert st["unacknowledged_changes"] == 0
    finally:
        watch.close()


def test_sql_store_apply_reaches_the_airline_as_bgm_132(tmp_path: Path) -> None:
    url = sql_store(tmp_path, "nzl.db")
    port = free_port()
    target = f"127.0.0.1:{port}"
    hub = serve(hub_config(tmp_path, port, sql_provider(url)), port)
    try:
        watch = Watch(target)
        raw = subprocess.Popen(
            [sys.executable, "-m", "rmas.cli", "iapi", "watch", "--hub", target, "--no-ack",
             "--count", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            ok_to_board(send_paxlst(tmp_path, target, [WIREMU, NGATA]), WIREMU, NGATA)
            # Another process reports Ngata's passport stolen (and one no flight holds).
            store_apply(tmp_path, url, stolen(NGATA), stolen(HOHAIA))
            change = watch.get()
            assert_do_not_board(change, NGATA, first=False)  # two subscriptions: either first
            edi, err = raw.communicate(timeout=30)
            assert raw.returncode == 0, err
            got = read_status_change(edi.strip().encode())
            assert (got["BGM"], got["ERC"]) == ("132", "1Z")
            assert (got["RFF+ABO"], got["RFF+AVF"]) == (NGATA.abo, NGATA.avf)
            # Acknowledged by the watch: not sent again, though resend_max_s is 2 s.
            assert watch.nothing(5.0)
            st = json.loads(rmas("status", "--hub", target, "--json").stdout)
            assert st["unacknowledged_changes"] == 0
        finally:
            watch.close()
            if raw.poll() is None:
                stop(raw)
        # A second subscription later: nothing pending for this airline.
        again = Watch(target)
        try:
            assert again.nothing(3.0)
        finally:
            again.close()
    finally:
        stop(hub)
    # What the hub kept of the flight, every byte of its files: no number, no name in clear.
    kept = b"".join(p.read_bytes() for p in tmp_path.glob("flights.db*"))
    assert kept
    for secret in (WIREMU.number, NGATA.number, WIREMU.surname, NGATA.surname, NGATA.given):
        assert secret.encode() not in kept, secret


def test_offloaded_and_closed_flights_get_no_status_change(tmp_path: Path) -> None:
    url = sql_store(tmp_path, "nzl.db")
    port, metrics = free_port(), free_port()
    target = f"127.0.0.1:{port}"
    extra = f'metrics_listen = "127.0.0.1:{metrics}"'
    hub = serve(hub_config(tmp_path, port, sql_provider(url), hub=extra), port)
    dep = departure()
    try:
        watch = Watch(target)
        try:
            # NZ103: Wiremu and Ngata; Ngata is then offloaded (BGM+745+XR).
            ok_to_board(send_paxlst(tmp_path, target, [WIREMU, NGATA], dep=dep, ref="R1"),
                        WIREMU, NGATA)  # fmt: skip
            send_paxlst(tmp_path, target, [NGATA], function="XR", dep=dep, ref="R2")
            # NZ105: Parata; the flight is then closed (BGM+266+CLOB).
            ok_to_board(send_paxlst(tmp_path, target, [PARATA], flight="NZ105", dep=dep,
                                    ref="R3"), PARATA)  # fmt: skip
            send_paxlst(tmp_path, target, [PARATA], flight="NZ105", bgm="266", function="CLOB",
                        dep=dep, ref="R4")  # fmt: skip
            st = json.loads(rmas("status", "--hub", target, "--json").stdout)
            assert st["open_flights"] == 1
            # Both reported stolen; then Wiremu, still on the open NZ103: only his arrives.
            store_apply(tmp_path, url, stolen(NGATA), stolen(PARATA))
            store_apply(tmp_path, url, stolen(WIREMU))
            change = watch.get()
            assert_do_not_board(change, WIREMU)
            assert watch.nothing(3.0)
            # The operator sees the store's change feed followed, and the three changes.
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as r:
                text = r.read().decode()
            assert 'rmas_change_feed_connected{provider="NZL"} 1.0' in text
            assert 'rmas_change_feed_changes_total{provider="NZL"} 3.0' in text
            assert 'rmas_change_feed_failures_total{provider="NZL"} 0.0' in text
        finally:
            watch.close()
    finally:
        stop(hub)


def node_config(tmp: Path, url: str) -> Path:
    path = tmp / "node.toml"
    path.write_text(sql_provider(url))
    return path


def test_remote_node_change_stream_reaches_the_airline(tmp_path: Path) -> None:
    url = sql_store(tmp_path, "node-nzl.db")
    node_port, port = free_port(), free_port()
    node = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "provider", "serve", "--config",
         str(node_config(tmp_path, url)), "--listen", f"127.0.0.1:{node_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert node.stdout is not None
        assert "serving on" in node.stdout.readline()
        providers = f"""
[[providers]]
id = "NZL"
kind = "grpc"
issuing_states = ["NZL"]
target = "127.0.0.1:{node_port}"
"""
        target = f"127.0.0.1:{port}"
        hub = serve(hub_config(tmp_path, port, providers), port)
        try:
            receives_stolen_report(
                tmp_path, target, lambda: store_apply(tmp_path, url, stolen(NGATA))
            )
        finally:
            stop(hub)
    finally:
        stop(node)


def sltd_report(base: str, token: str, p: Pax) -> None:
    """New Zealand reports ``p``'s passport stolen through the central store's API."""
    body = json.dumps({"country": "NZ", "type": "PASSPORT", "number": p.number,
                       "status": "STOLEN", "event_date": "2026-12-01"}).encode()  # fmt: skip
    req = urllib.request.Request(
        f"{base}/v1/records", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201


@contextlib.contextmanager
def sltd_service(tmp: Path) -> Iterator[tuple[str, str]]:
    """A real `rmas sltd serve` over a store loaded from fixtures: (its base URL, its store)."""
    sltd_port = free_port()
    sltd_url = f"sqlite+aiosqlite:///{tmp / 'sltd.db'}"
    assert rmas("sltd", "import", "--url", sltd_url, str(FIX / "sltd/records.csv")).returncode == 0
    sltd = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "sltd", "serve", "--url", sltd_url, "--listen",
         f"127.0.0.1:{sltd_port}", "--tokens", str(FIX / "sltd/tokens.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sltd.stdout is not None
        assert "sltd serving on" in sltd.stdout.readline()
        yield f"http://127.0.0.1:{sltd_port}", sltd_url
    finally:
        stop(sltd)


def sltd_provider(base: str) -> str:
    """The hub's global ``sltd`` provider of that service, polling its change list quickly."""
    return f"""
[[providers]]
id = "SLTD"
kind = "sltd"
scope = "global"
required = true
url = "{base}"
token = "demo-nz-token"
poll_interval = 0.1
"""


def test_sltd_store_report_reaches_the_airline(tmp_path: Path) -> None:
    url = sql_store(tmp_path, "nzl.db")
    port = free_port()
    with sltd_service(tmp_path) as (base, _store):
        providers = sql_provider(url) + sltd_provider(base)
        target = f"127.0.0.1:{port}"
        hub = serve(hub_config(tmp_path, port, providers), port)
        try:
            receives_stolen_report(
                tmp_path, target, lambda: sltd_report(base, "demo-nz-token", NGATA)
            )
        finally:
            stop(hub)


async def _empty_postgres(url: str) -> None:
    """No store and no flight state left by an earlier test in the database."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from rmas.flights.store import metadata

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.execute(text(
            "DROP TABLE IF EXISTS documents, abtc_cards, store_meta, feeds, change_log, "
            "alembic_version CASCADE"
        ))  # fmt: skip
    await engine.dispose()


def test_two_hubs_on_postgres_the_airline_on_hub_b_is_told_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """Store and flight state on PostgreSQL, shared by two hubs: the PAXLST answered by hub A,
    the airline subscribed to hub B, the passport reported stolen with ``rmas store apply``:
    both hubs see the change, the airline is told once."""
    asyncio.run(_empty_postgres(postgres_url))
    asyncio.run(import_csv(postgres_url, FIX / "records/nzl.csv"))
    port_a, port_b = free_port(), free_port()
    flights = f'url = "{postgres_url}"'
    cfg_a = hub_config(tmp_path, port_a, sql_provider(postgres_url), flights=flights,
                       name="a.toml")  # fmt: skip
    cfg_b = hub_config(tmp_path, port_b, sql_provider(postgres_url), flights=flights,
                       name="b.toml")  # fmt: skip
    hub_a, hub_b = serve(cfg_a, port_a), serve(cfg_b, port_b)
    try:
        watch = Watch(f"127.0.0.1:{port_b}")
        try:
            answer = send_paxlst(tmp_path, f"127.0.0.1:{port_a}", [WIREMU, NGATA])
            ok_to_board(answer, WIREMU, NGATA)
            store_apply(tmp_path, postgres_url, stolen(NGATA))
            assert_do_not_board(watch.get(), NGATA)
            assert watch.nothing(5.0)  # not twice (two hubs saw it), not again (acknowledged)
            for port in (port_a, port_b):
                st = json.loads(rmas("status", "--hub", f"127.0.0.1:{port}", "--json").stdout)
                assert (st["open_flights"], st["unacknowledged_changes"]) == (1, 0)
        finally:
            watch.close()
    finally:
        stop(hub_a)
        stop(hub_b)


def test_a_bulk_import_rechecks_the_open_passengers(tmp_path: Path) -> None:
    """``rmas store import`` logs no keys (a ``reload``): the hub checks every open passenger
    the store answers for again, and tells the airline of the one whose answer changed."""
    url = sql_store(tmp_path, "nzl.db")
    port = free_port()
    target = f"127.0.0.1:{port}"
    hub = serve(hub_config(tmp_path, port, sql_provider(url)), port)
    try:
        watch = Watch(target)
        try:
            ok_to_board(send_paxlst(tmp_path, target, [WIREMU, NGATA]), WIREMU, NGATA)
            csv = tmp_path / "more.csv"
            header = (FIX / "records/nzl.csv").read_text().splitlines()[0]
            csv.write_text(f"{header}\nNZL,{NGATA.number},P,STOLEN,2026-12-01,NZL-9,,,,,,DIA,\n")
            done = rmas("store", "import", "--url", url, str(csv))
            assert done.returncode == 0, done.stderr
            assert_do_not_board(watch.get(), NGATA)
            assert watch.nothing(4.0)
        finally:
            watch.close()
    finally:
        stop(hub)


def test_a_change_made_while_the_hub_is_down_reaches_the_airline_after_restart(
    tmp_path: Path,
) -> None:
    url = sql_store(tmp_path, "nzl.db")
    port = free_port()
    target = f"127.0.0.1:{port}"
    cfg = hub_config(tmp_path, port, sql_provider(url))
    hub = serve(cfg, port)
    try:
        ok_to_board(send_paxlst(tmp_path, target, [WIREMU, NGATA]), WIREMU, NGATA)
    finally:
        stop(hub)
    store_apply(tmp_path, url, stolen(NGATA))  # nobody watching: the hub resumes from its mark
    hub = serve(cfg, port)
    try:
        watch = Watch(target)
        try:
            assert_do_not_board(watch.get(), NGATA)
            assert watch.nothing(4.0)
        finally:
            watch.close()
    finally:
        stop(hub)


def test_a_change_made_while_the_node_is_down_reaches_the_airline_once_it_is_back(
    tmp_path: Path,
) -> None:
    url = sql_store(tmp_path, "node-nzl.db")
    node_port, port = free_port(), free_port()
    node_cmd = [sys.executable, "-m", "rmas.cli", "provider", "serve", "--config",
                str(node_config(tmp_path, url)), "--listen", f"127.0.0.1:{node_port}"]  # fmt: skip

    def start_node() -> subprocess.Popen[str]:
        node = subprocess.Popen(node_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert node.stdout is not None
        assert "serving on" in node.stdout.readline()
        return node

    node = start_node()
    providers = f"""
[[providers]]
id = "NZL"
kind = "grpc"
issuing_states = ["NZL"]
target = "127.0.0.1:{node_port}"
"""
    target = f"127.0.0.1:{port}"
    hub = serve(hub_config(tmp_path, port, providers), port)
    try:
        watch = Watch(target)
        try:
            ok_to_board(send_paxlst(tmp_path, target, [WIREMU, NGATA]), WIREMU, NGATA)
            stop(node)
            store_apply(tmp_path, url, stolen(NGATA))
            node = start_node()
            assert_do_not_board(watch.get(), NGATA)
            assert watch.nothing(4.0)
        finally:
            watch.close()
    finally:
        stop(hub)
        stop(node)


def test_a_bulk_import_at_a_node_rechecks_the_open_passengers(tmp_path: Path) -> None:
    """The node's store reloaded in bulk: its WatchChanges says changes were lost, the hub
    checks its open passengers again."""
    url = sql_store(tmp_path, "node-nzl.db")
    node_port, port = free_port(), free_port()
    node = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "provider", "serve", "--config",
         str(node_config(tmp_path, url)), "--listen", f"127.0.0.1:{node_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert node.stdout is not None
        assert "serving on" in node.stdout.readline()
        providers = f"""
[[providers]]
id = "NZL"
kind = "grpc"
issuing_states = ["NZL"]
target = "127.0.0.1:{node_port}"
"""
        target = f"127.0.0.1:{port}"
        hub = serve(hub_config(tmp_path, port, providers), port)
        try:

            def reload() -> None:
                csv = tmp_path / "more.csv"
                header = (FIX / "records/nzl.csv").read_text().splitlines()[0]
                csv.write_text(f"{header}\nNZL,{NGATA.number},P,STOLEN,2026-12-01,N9,,,,,,DIA,\n")
                done = rmas("store", "import", "--url", url, str(csv))
                assert done.returncode == 0, done.stderr

            receives_stolen_report(tmp_path, target, reload)
        finally:
            stop(hub)
    finally:
        stop(node)


def test_a_bulk_load_of_the_sltd_store_rechecks_the_open_passengers(tmp_path: Path) -> None:
    url = sql_store(tmp_path, "nzl.db")
    port = free_port()
    with sltd_service(tmp_path) as (base, sltd_url):
        providers = sql_provider(url) + sltd_provider(base)
        target = f"127.0.0.1:{port}"
        hub = serve(hub_config(tmp_path, port, providers), port)
        try:

            def reload() -> None:
                seed = tmp_path / "seed.csv"
                head = (FIX / "sltd/records.csv").read_text().splitlines()[0]
                seed.write_text(f"{head}\nNZ,PASSPORT,{NGATA.number},STOLEN,2026-12-01,x,NZ\n")
                done = rmas("sltd", "import", "--url", sltd_url, str(seed))
                assert done.returncode == 0, done.stderr

            receives_stolen_report(tmp_path, target, reload)
        finally:
            stop(hub)


def test_after_a_change_of_passport_only_the_new_one_counts(tmp_path: Path) -> None:
    """BGM+745+CP gives Ngata a new passport: a stolen report on the old one sends nothing,
    one on the new one sends BGM+132."""
    url = sql_store(tmp_path, "nzl.db")
    port = free_port()
    target = f"127.0.0.1:{port}"
    hub = serve(hub_config(tmp_path, port, sql_provider(url)), port)
    dep = departure()
    renewed = Pax(NGATA.abo, NGATA.avf, NGATA.surname, NGATA.given, NGATA.birth, "LA920012")
    try:
        watch = Watch(target)
        try:
            ok_to_board(send_paxlst(tmp_path, target, [WIREMU, NGATA], dep=dep, ref="R1"),
                        WIREMU, NGATA)  # fmt: skip
            ok_to_board(send_paxlst(tmp_path, target, [renewed], function="CP", dep=dep,
                                    ref="R2"), renewed)  # fmt: skip
            store_apply(tmp_path, url, stolen(NGATA))
            store_apply(tmp_path, url, stolen(renewed))
            assert_do_not_board(watch.get(), renewed)
            assert watch.nothing(3.0)
        finally:
            watch.close()
    finally:
        stop(hub)


def test_a_subscribed_airline_does_not_hold_up_a_stop_and_gets_the_change_again(
    tmp_path: Path,
) -> None:
    """A subscription never ends on its own: a stopping hub ends it (the drain does not wait
    out its grace, here ten minutes, for it); the airline's ``rmas iapi watch`` subscribes again
    once the hub is back and receives the change it had not acknowledged, sent again."""
    url = sql_store(tmp_path, "nzl.db")
    port = free_port()
    target = f"127.0.0.1:{port}"
    cfg = hub_config(tmp_path, port, sql_provider(url), hub="drain_grace_ms = 600000")
    hub = serve(cfg, port)
    watch = Watch(target, "--no-ack")
    try:
        ok_to_board(send_paxlst(tmp_path, target, [WIREMU, NGATA]), WIREMU, NGATA)
        store_apply(tmp_path, url, stolen(NGATA))
        first = watch.get()
        assert_do_not_board(first, NGATA)
        hub.terminate()
        _out, err = hub.communicate(timeout=60)  # well before the grace period's end
        assert hub.returncode == 0, err[-2000:]
        assert '"drained": true' in err
        assert watch.proc.poll() is None  # the airline's client waits for the hub
        hub = serve(cfg, port)
        again = watch.get(60)
        assert again["change_id"] == first["change_id"]
        assert again["attempt"] == 2
    finally:
        watch.close()
        stop(hub)


def test_after_a_reload_that_replaces_the_store_provider_changes_still_arrive(
    tmp_path: Path,
) -> None:
    """SIGHUP with the SQL provider's store moved: the provider is replaced, and the change
    watcher follows the new one."""
    url = sql_store(tmp_path, "nzl.db")
    port = free_port()
    target = f"127.0.0.1:{port}"
    cfg = hub_config(tmp_path, port, sql_provider(url))
    hub = serve(cfg, port)
    try:
        watch = Watch(target)
        try:
            ok_to_board(send_paxlst(tmp_path, target, [WIREMU, NGATA]), WIREMU, NGATA)
            moved = sql_store(tmp_path, "nzl-moved.db")  # the same records, moved
            cfg.write_text(cfg.read_text().replace(url, moved))
            hub.send_signal(signal.SIGHUP)
            for _ in range(100):
                st = json.loads(rmas("status", "--hub", target, "--json").stdout)
                if st["last_reload_at"]:
                    break
                time.sleep(0.1)
            assert st["last_reload_ok"], st["last_reload_detail"]
            assert "replaced NZL" in st["last_reload_detail"], st["last_reload_detail"]
            store_apply(tmp_path, moved, stolen(NGATA))
            assert_do_not_board(watch.get(), NGATA)
            assert watch.nothing(3.0)
        finally:
            watch.close()
    finally:
        stop(hub)


def test_an_officer_overrides_the_do_not_board_a_stolen_report_caused(tmp_path: Path) -> None:
    """The check id the airline received with BGM+132 is the one an officer names: ``rmas
    override`` turns the 1Z into 0Z, sent to the airline as one more status change."""
    url = sql_store(tmp_path, "nzl.db")
    port = free_port()
    target = f"127.0.0.1:{port}"
    hub = serve(hub_config(tmp_path, port, sql_provider(url)), port)
    try:
        watch = Watch(target)
        try:
            ok_to_board(send_paxlst(tmp_path, target, [WIREMU, NGATA]), WIREMU, NGATA)
            store_apply(tmp_path, url, stolen(NGATA))
            change = watch.get()
            assert_do_not_board(change, NGATA)
            done = rmas("override", "--hub", target, "--check-id", change["check_ids"][0],
                        "--reason", "holder verified at the counter", "--json")  # fmt: skip
            assert done.returncode == 0, done.stderr
            summary = json.loads(done.stdout)
            assert (summary["original"], summary["directive"]) == ("DO_NOT_BOARD", "OK_TO_BOARD")
            after = watch.get()
            assert (after["passenger_ref"], after["directive"]) == (NGATA.abo, "OK_TO_BOARD")
            assert after["overridden"] is True
            assert watch.nothing(3.0)
        finally:
            watch.close()
    finally:
        stop(hub)
