"""The operator's page: the hub at a glance, refreshed live, in a real headless Chromium."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import Hub, fill_fields


def test_the_status_page_shows_every_provider_and_the_audit_trail(hub: Hub, page: Page) -> None:
    page.goto(hub.console + "/status")
    rows = page.locator("#providers tr.provider")
    expect(rows).to_have_count(3)
    nzl = page.locator('tr.provider[data-provider="NZL"]')
    expect(nzl.locator(".health")).to_have_text("ok")
    expect(nzl).to_contain_text("300")  # records the store holds
    phl = page.locator('tr.provider[data-provider="PHL"]')
    expect(phl.locator(".breaker")).to_have_text("closed")
    expect(phl).to_contain_text("PHL")  # the states the node describes
    expect(page.locator("#audit-healthy")).to_have_text("healthy")
    expect(page.locator("#audit-head")).to_have_text(re.compile(r"^\d+:[0-9a-f]{64}$"))


def test_the_status_page_shows_a_provider_going_down_without_a_reload(
    hub: Hub, browser: Browser, page: Page
) -> None:
    page.goto(hub.console + "/status")
    phl = page.locator('tr.provider[data-provider="PHL"]')
    expect(phl.locator(".health")).to_have_text("ok")
    page.evaluate("window.loadedOnce = true")
    checks = page.locator("#checks")
    before = int(checks.inner_text())

    # An officer elsewhere checks documents while the Philippines' node is killed.
    officer = browser.new_context().new_page()
    officer.goto(hub.console + "/check")
    fill_fields(officer, "PHL", "P0000002C")
    expect(officer.locator("#verdict-value")).to_have_text("ALERT")
    expect(checks).not_to_have_text(str(before), timeout=10_000)  # live: the count moved
    hub.kill_node()
    for _ in range(3):
        officer.goto(hub.console + "/check")
        fill_fields(officer, "PHL", "P0000002C")
        expect(officer.locator("#verdict-value")).to_have_text("INCOMPLETE")
    officer.context.close()

    expect(phl).to_have_class(re.compile(r"\bhealth-down\b"), timeout=10_000)
    expect(phl.locator(".health")).to_have_text("down")
    expect(phl.locator(".breaker")).to_have_text("open")
    expect(phl.locator(".last-error")).not_to_be_empty()
    assert page.evaluate("window.loadedOnce") is True  # the same page, never reloaded
