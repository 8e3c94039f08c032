"""A reload (SIGHUP) never swaps a working configuration for a broken one: a truncated file, one
without providers, or one with a mistyped option is refused and the old providers keep
answering. A real ``rmas serve`` process."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from rmas.client import document_pb
from rmas.v1 import check_pb2, check_pb2_grpc
from tests.hubproc import free_port, serve

CONFIG = """
[hub]
listen = "127.0.0.1:{port}"

[[providers]]
id = "NZL"
kind = "fake"
issuing_states = ["NZL"]
contact = "NZ 24/7 desk"
records = { "NZL:LA000002" = "STOLEN" }
"""


class LogLines:
    """The hub's stderr, read line by line as it comes (JSON log lines parsed)."""

    def __init__(self, stream: Any) -> None:
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            if line.startswith("{"):
                self._lines.put(json.loads(line))

    def next_event(self, *names: str, within_s: float = 30.0) -> dict[str, Any]:
        """The next log line whose event is one of ``names`` (fails after ``within_s``)."""
        while True:
            entry = self._lines.get(timeout=within_s)
            if entry.get("event") in names:
                return entry


async def check(target: str) -> check_pb2.CheckResult:
    async with grpc.aio.insecure_channel(target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_pb2.CheckDocumentRequest(document=document_pb(number="LA000002", state="NZL")),
            timeout=10,
        )
    result: check_pb2.CheckResult = resp.result
    return result


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (CONFIG.split("[[providers]]", 1)[0], "no [[providers]] table"),
        ("", "no [[providers]] table"),
        (CONFIG.split("issuing_states", 1)[0], "providers[0].issuing_states"),
        (CONFIG.split("records", 1)[0] + 'rec', "not valid TOML"),
        (CONFIG.replace("contact =", "contcat ="), 'did you mean "contact"?'),
        (CONFIG.replace("records =", "recods ="), 'did you mean "records"?'),
    ],
    ids=["hub-only", "empty", "cut-in-provider", "cut-mid-key", "contcat", "recods"],
)  # fmt: skip
async def test_a_reload_of_a_broken_file_keeps_the_old_providers_answering(
    tmp_path: Path, broken: str, reason: str
) -> None:
    port = free_port()
    path = tmp_path / "hub.toml"
    path.write_text(CONFIG.replace("{port}", str(port)))
    proc = serve(path, port, stdout=subprocess.PIPE)
    logs = LogLines(proc.stderr)
    try:
        target = f"127.0.0.1:{port}"
        assert (await check(target)).verdict == check_pb2.VERDICT_ALERT
        path.write_text(broken.replace("{port}", str(port)))
        proc.send_signal(signal.SIGHUP)
        event = logs.next_event("config_reload_rejected", "config_reloaded")
        assert event["event"] == "config_reload_rejected"
        assert reason in event["error"]
        after = await check(target)
        assert after.verdict == check_pb2.VERDICT_ALERT
        assert [(s.provider_id, s.contact) for s in after.sources] == [("NZL", "NZ 24/7 desk")]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0
