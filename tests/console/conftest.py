"""The console's test bench: real hub processes, real stores, a real headless Chromium.

A hub is ``rmas serve`` in a subprocess (its logs to a file the tests read) with the console on,
in front of New Zealand's SQL store (an SQLite file loaded from fixtures/records), the
Philippines' national node (``rmas provider serve``, another process: killed to take it down)
and a United States node that is down (INCOMPLETE). Chromium is Debian's package driven by
Playwright (never a browser Playwright downloads).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from adapters.sqlstore.cards import import_cards
from adapters.sqlstore.importer import import_csv
from rmas.mrz import Layout
from rmas.security.certs import init_dir
from rmas.testing import compose
from tests.hubproc import free_port

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "fixtures" / "records"
CHROMIUM = os.environ.get("RMAS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def zone(number: str, state: str = "NZL", *, surname: str = "TESTER", given: str = "ALEX",
         layout: Layout = Layout.TD3) -> list[str]:  # fmt: skip
    """A zone with correct check digits for a document of ``state``."""
    return compose(
        layout, document_code="P", issuing_state=state, surname=surname, given_names=given,
        document_number=number, nationality=state, birth_date="900101", sex="F",
        expiry_date="300101",
    )  # fmt: skip


def scan(page: Page, lines: list[str]) -> None:
    """Type the zone as a keyboard-wedge scanner does: each line, then Enter. No mouse."""
    assert page.evaluate("document.activeElement.id") == "mrz"  # focused on arrival
    with page.expect_navigation():
        for line in lines:
            page.keyboard.type(line)
            page.keyboard.press("Enter")


def fill_fields(page: Page, state: str, number: str, **holder: str) -> None:
    page.fill("#issuing_state", state)
    page.fill("#number", number)
    for name, value in holder.items():
        page.fill(f"#{name}", value)
    with page.expect_navigation():
        page.press("#number", "Enter")


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited: {log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(
        f"nothing listened on {port} within {seconds} s: {log.read_text()[-3000:]}"
    )


def _start(args: list[str], log: Path, port: int) -> subprocess.Popen[bytes]:
    out: IO[bytes] = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", *args], stdout=out, stderr=subprocess.STDOUT
    )
    out.close()
    _wait_port(port, proc, log)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Hub:
    """A hub process with its console, and what the tests need to know about it."""

    dir: Path
    console: str
    log: Path
    node: subprocess.Popen[bytes] | None
    proc: subprocess.Popen[bytes]
    certs: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def kill_node(self) -> None:
        assert self.node is not None
        os.kill(self.node.pid, signal.SIGKILL)
        self.node.wait(5)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def start_hub(base: Path, *, tls: bool = False) -> Hub:
    """Stores, the PHL node and the hub with its console; TLS with development certificates."""
    base.mkdir(parents=True, exist_ok=True)
    for state in ("nzl", "phl"):
        db = base / f"{state}.db"
        asyncio.run(import_csv(f"sqlite+aiosqlite:///{db}", RECORDS / f"{state}.csv", replace=True))
    # New Zealand's APEC Business Travel Cards, in its store; the hub is Australia's lane.
    asyncio.run(import_cards(f"sqlite+aiosqlite:///{base / 'nzl.db'}", RECORDS / "abtc_nzl.csv"))
    (base / "audit.key").write_text("ab" * 32 + "\n")
    certs = base / "certs" if tls else None
    tls_table = ""
    if certs is not None:
        init_dir(certs)
        tls_table = (
            f'[tls]\ncert = "{certs}/hub.pem"\nkey = "{certs}/hub.key"\nca = "{certs}/ca.pem"\n\n'
            '[[callers]]\nidentity = "rmas://officer/*"\nrole = "officer"\n\n'
            '[[callers]]\nidentity = "rmas://operator/*"\nrole = "operator"\n\n'
            '[[callers]]\nidentity = "rmas://airline/*"\nrole = "airline"\n\n'
            '[[callers]]\nidentity = "rmas://node/*"\nrole = "node"\n\n'
        )
    node_port, hub_port, console_port = free_port(), free_port(), free_port()
    node_cfg = base / "node.toml"
    node_cfg.write_text(
        '[[providers]]\nid = "PHL"\nkind = "sql"\nissuing_states = ["PHL"]\n'
        f'url = "sqlite+aiosqlite:///{base / "phl.db"}"\n'
    )
    log = base / "hub.log"
    node_log = base / "node.log"
    node = None
    phl = (
        '[[providers]]\nid = "PHL"\nkind = "grpc"\nissuing_states = ["PHL"]\n'
        f'target = "127.0.0.1:{node_port}"\ncontact = "PH Bureau of Immigration 24/7"\n'
        "breaker_failures = 2\nretries = 0\n\n"
    )
    if certs is None:
        node = _start(
            ["provider", "serve", "--config", str(node_cfg), "--listen", f"127.0.0.1:{node_port}"],
            node_log,
            node_port,
        )
    else:  # the node link's TLS is tested elsewhere (tests/remote): a scripted PHL here
        phl = (
            '[[providers]]\nid = "PHL"\nkind = "fake"\nissuing_states = ["PHL"]\n'
            'records = { "PHL:P0000002C" = "STOLEN" }\n\n'
        )
    cfg = base / "hub.toml"
    cfg.write_text(
        f'[hub]\nlisten = "127.0.0.1:{hub_port}"\nconsole_listen = "127.0.0.1:{console_port}"\n'
        'log_level = "debug"\ndeadline_ms = 2000\neconomy = "AUS"\n\n'
        f"{tls_table}"
        f'[audit]\nurl = "sqlite+aiosqlite:///{base / "audit.db"}"\nkey_file = "audit.key"\n\n'
        '[[providers]]\nid = "NZL"\nkind = "sql"\nissuing_states = ["NZL"]\n'
        f'url = "sqlite+aiosqlite:///{base / "nzl.db"}"\n'
        'contact = "NZ Customs 24/7 document desk +64 4 000 0000"\n\n'
        f"{phl}"
        '[[providers]]\nid = "USA"\nkind = "fake"\nissuing_states = ["USA"]\n'
        'failure = "unavailable"\ncontact = "US 24/7 desk"\n'
    )
    try:
        proc = _start(["serve", "--config", str(cfg)], log, console_port)
    except BaseException:
        if node is not None:
            _stop(node)
        raise
    scheme = "https" if tls else "http"
    return Hub(base, f"{scheme}://127.0.0.1:{console_port}", log, node, proc, certs)


def stop_hub(hub: Hub) -> None:
    _stop(hub.proc)
    if hub.node is not None:
        _stop(hub.node)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = start_hub(tmp_path_factory.mktemp("console"))
    yield h
    stop_hub(h)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        raise AssertionError(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Visits:
    """Every URL a page asked for (navigations, redirects, scripts, event streams)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("framenavigated", lambda frame: self.urls.append(frame.url))
        return page


@pytest.fixture
def visits() -> Visits:
    return Visits()


@pytest.fixture
def page(browser: Browser, visits: Visits) -> Iterator[Page]:
    context = browser.new_context()
    p = visits.watch(context.new_page())
    p.set_default_timeout(15_000)
    yield p
    context.close()
