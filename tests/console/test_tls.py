"""The console under [tls]: the browser presents a client certificate, [[callers]] decide.

Playwright loads each party's certificate and key into the browser context
(``client_certificates``); the hub's certificate is signed by the test CA, which this browser
profile does not trust, so certificate errors about the *server* are ignored
(``ignore_https_errors``): what is tested is the client side, which the hub verifies.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Error, Page, expect

from tests.console.conftest import Hub, fill_fields, scan, start_hub, stop_hub, zone


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = start_hub(tmp_path_factory.mktemp("console-tls"), tls=True)
    yield h
    stop_hub(h)


def as_party(browser: Browser, hub: Hub, party: str | None) -> BrowserContext:
    assert hub.certs is not None
    certs = []
    if party is not None:
        certs = [{"origin": hub.console, "certPath": str(hub.certs / f"{party}.pem"),
                  "keyPath": str(hub.certs / f"{party}.key")}]  # fmt: skip
    context = browser.new_context(client_certificates=certs, ignore_https_errors=True)
    context.set_default_timeout(15_000)
    return context


def page_of(context: BrowserContext) -> Page:
    return context.new_page()


def test_an_officer_checks_a_document_with_a_client_certificate(
    tls_hub: Hub, browser: Browser
) -> None:
    context = as_party(browser, tls_hub, "officer")
    page = page_of(context)
    try:
        page.goto(tls_hub.console + "/")
        assert page.url == tls_hub.console + "/check"
        expect(page.locator("#who")).to_have_text("rmas://officer/AKL-T1 (officer)")
        expect(page.locator("header nav")).not_to_contain_text("Status")
        scan(page, zone("P0000002C", "PHL"))
        expect(page.locator("#verdict-value")).to_have_text("ALERT")
        check_id = page.locator("#check-id").inner_text()
        page.goto(tls_hub.console + "/check")
        fill_fields(page, "NZL", "LA900001")
        expect(page.locator("#verdict-value")).to_have_text("CLEAR")
        page.goto(tls_hub.console + f"/checks/{check_id}")
        # The audit entry names the certificate's identity as the caller.
        expect(page.locator("#entries .entry")).to_contain_text("rmas://officer/AKL-T1 (officer)")
        assert page.goto(tls_hub.console + "/status").status == 403  # type: ignore[union-attr]
    finally:
        context.close()


def test_an_operator_sees_the_status_page_and_no_check(tls_hub: Hub, browser: Browser) -> None:
    context = as_party(browser, tls_hub, "operator")
    page = page_of(context)
    try:
        page.goto(tls_hub.console + "/")
        assert page.url == tls_hub.console + "/status"
        expect(page.locator("#providers tr.provider")).to_have_count(3)
        response = page.goto(tls_hub.console + "/check")
        assert response is not None and response.status == 403
        expect(page.locator("#refused")).to_contain_text("may not use this page")
        posted = page.request.post(
            tls_hub.console + "/check", form={"mode": "fields", "issuing_state": "NZL",
                                              "number": "LA000002"})  # fmt: skip
        assert posted.status == 403
    finally:
        context.close()


@pytest.mark.parametrize(
    ("party", "why"),
    [
        ("airline", "(airline) has no console on this hub"),
        ("node", "(node) has no console on this hub"),
        ("hub", "rmas://hub/hub-1 is not a known caller of this hub"),  # no [[callers]] rule
    ],
)
def test_an_airline_a_node_or_a_stranger_gets_no_console(
    tls_hub: Hub, browser: Browser, party: str, why: str
) -> None:
    context = as_party(browser, tls_hub, party)
    page = page_of(context)
    try:
        for path in ("/", "/check", "/find", "/status"):
            response = page.goto(tls_hub.console + path)
            assert response is not None and response.status == 403
            expect(page.locator("#refused")).to_contain_text(why)
        posted = page.request.post(
            tls_hub.console + "/check", form={"mode": "fields", "issuing_state": "NZL",
                                              "number": "LA000002"})  # fmt: skip
        assert posted.status == 403
        assert "LA000002" not in posted.text()
    finally:
        context.close()
    assert "LA000002" not in tls_hub.logs()


def test_a_browser_without_a_client_certificate_is_refused_at_the_handshake(
    tls_hub: Hub, browser: Browser
) -> None:
    context = as_party(browser, tls_hub, None)
    try:
        with pytest.raises(Error):
            page_of(context).goto(tls_hub.console + "/check")
    finally:
        context.close()
