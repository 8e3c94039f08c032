"""The garbage collector's settings of a serving hub (rmas.runtime.settle_for_serving), checked in
a real ``rmas serve`` process: start-up objects frozen, and the young generation's threshold for
serving."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from rmas.runtime import SERVING_GC_THRESHOLD
from tests.hubproc import free_port

# ``rmas serve`` as the command runs it, with a report of the collector's state at exit.
LAUNCHER = """
import atexit, gc, json, sys

def report():
    with open(sys.argv[1], "w") as f:
        json.dump({"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}, f)

atexit.register(report)
from rmas.cli import main
sys.exit(main(["serve", "--config", sys.argv[2]]))
"""


def test_a_serving_hub_freezes_its_start_up_objects_and_sets_the_young_threshold(
    tmp_path: Path,
) -> None:
    port = free_port()
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f'[hub]\nlisten = "127.0.0.1:{port}"\nlog_level = "warning"\n'
        '[[providers]]\nid = "NZL"\nkind = "fake"\nissuing_states = ["NZL"]\n'
    )
    out = tmp_path / "gc.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(out), str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "serving on" in proc.stdout.readline()  # printed once settled
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.communicate()[1][-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    state = json.loads(out.read_text())
    assert state["frozen"] > 10_000  # modules, config, the gRPC server: all start-up objects
    assert state["threshold"][0] == SERVING_GC_THRESHOLD
