"""Screenshots of every console page for docs/console.md, taken in headless Chromium.

    .venv/bin/python -m tests.console.screenshots docs/console

Starts a hub with mutual TLS and development certificates (as the tests do), then visits the
pages as an officer, an operator and an airline, each with its own client certificate.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.console.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Hub,
    fill_fields,
    scan,
    start_hub,
    stop_hub,
    zone,
)

#: File name -> what it shows (docs/console.md lists them in this order).
SHOTS = {
    "check.png": "the check page: scan or type the zone, or enter the fields",
    "alert-misread.png": "ALERT from an OCR candidate: a misread digit, refuted and highlighted",
    "clear.png": "CLEAR by fields",
    "incomplete.png": "INCOMPLETE: the issuing economy's node is down",
    "find.png": "a check found by its id in the audit trail",
    "status.png": "the operator's page, refreshed live",
    "refused.png": "an airline's certificate: no console",
}


def _page(browser: Browser, hub: Hub, party: str) -> Page:
    assert hub.certs is not None
    context = browser.new_context(
        client_certificates=[{"origin": hub.console, "certPath": str(hub.certs / f"{party}.pem"),
                              "keyPath": str(hub.certs / f"{party}.key")}],
        ignore_https_errors=True,
        viewport={"width": 1280, "height": 900},
    )  # fmt: skip
    context.set_default_timeout(15_000)
    return context.new_page()


def take(out: Path) -> list[Path]:
    """Take every screenshot in :data:`SHOTS` into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hub = start_hub(Path(tmp), tls=True)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                officer = _page(browser, hub, "officer")
                officer.goto(hub.console + "/check")
                officer.screenshot(path=out / "check.png")
                line1, line2 = zone("LA000002")
                scan(officer, [line1, line2[:6] + "O" + line2[7:]])
                officer.screenshot(path=out / "alert-misread.png", full_page=True)
                check_id = officer.locator("#check-id").inner_text()
                officer.goto(hub.console + "/check")
                fill_fields(officer, "NZL", "LA900001", surname="TESTER", given_names="ALEX")
                officer.screenshot(path=out / "clear.png", full_page=True)
                officer.goto(hub.console + "/check")
                scan(officer, zone("500000002", "USA"))
                officer.screenshot(path=out / "incomplete.png", full_page=True)
                officer.goto(hub.console + "/find")
                officer.fill("#check_id", check_id)
                with officer.expect_navigation():
                    officer.press("#check_id", "Enter")
                officer.screenshot(path=out / "find.png", full_page=True)
                operator = _page(browser, hub, "operator")
                operator.goto(hub.console + "/status")
                operator.locator('tr.provider[data-provider="USA"].health-down').wait_for()
                operator.screenshot(path=out / "status.png", full_page=True)
                airline = _page(browser, hub, "airline")
                airline.goto(hub.console + "/check")
                airline.screenshot(path=out / "refused.png")
                browser.close()
        finally:
            stop_hub(hub)
    return [out / name for name in SHOTS]


if __name__ == "__main__":
    for path in take(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console")):
        print(path)
