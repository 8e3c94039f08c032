"""The APEC Business Travel Card at the console: the card's verdict beside the passport's.

Real headless Chromium against a real hub process whose New Zealand SQL store also holds New
Zealand's cards (fixtures/records/abtc_nzl.csv); the hub is Australia's lane (``economy``).
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.console.conftest import Hub, Visits, scan, zone


def check_with_card(page: Page, hub: Hub, state: str, number: str, card: str, **more: str) -> None:
    page.goto(hub.console + "/check")
    page.fill("#issuing_state", state)
    page.fill("#number", number)
    page.fill("#abtc", card)
    for name, value in more.items():
        page.fill(f"#{name}", value)
    with page.expect_navigation():
        page.press("#number", "Enter")


def test_a_genuine_pre_cleared_card_is_usable_beside_a_clear_passport(
    hub: Hub, page: Page, visits: Visits
) -> None:
    check_with_card(page, hub, "NZL", "LA900001", "NZ0000101")
    expect(page.locator("#verdict-value")).to_have_text("CLEAR")
    expect(page.locator("#abtc-verdict")).to_have_text("USABLE at the AUS lane")
    expect(page.locator("#abtc-answer")).to_have_class("card-verdict ok")
    expect(page.locator("#abtc-status")).to_have_text("VALID")
    expect(page.locator("#abtc-passport")).to_have_text("match")
    expect(page.locator("#abtc-answer")).to_contain_text("Immigration New Zealand")
    assert not any("NZ0000101" in url for url in visits.urls)
    assert "NZ0000101" not in hub.logs()


def test_a_card_not_pre_cleared_for_the_checking_economy_is_not_usable(
    hub: Hub, page: Page
) -> None:
    check_with_card(page, hub, "NZL", "LA900001", "NZ0000101", abtc_for="JPN")
    expect(page.locator("#abtc-verdict")).to_have_text("USABLE at the JPN lane")
    check_with_card(page, hub, "NZL", "LA900001", "NZ0000101", abtc_for="USA")
    expect(page.locator("#abtc-verdict")).to_have_text("NOT USABLE: not pre cleared")
    expect(page.locator("#abtc-precleared")).to_have_text("no")


def test_a_counterfeit_card_never_changes_the_passports_directive(hub: Hub, page: Page) -> None:
    check_with_card(page, hub, "NZL", "LA900001", "NZ9999999")
    expect(page.locator("#verdict-value")).to_have_text("CLEAR")
    expect(page.locator("#directive")).to_have_text("OK TO BOARD")
    expect(page.locator("#abtc-verdict")).to_have_text("NOT USABLE: not issued")
    expect(page.locator("#abtc-answer")).to_have_class("card-verdict alert")


def test_a_card_tied_to_another_passport_beside_a_stolen_one(hub: Hub, page: Page) -> None:
    check_with_card(page, hub, "NZL", "LA000002", "NZ0000101")
    expect(page.locator("#verdict-value")).to_have_text("ALERT")
    expect(page.locator("#abtc-verdict")).to_have_text("NOT USABLE: tied to other passport")


def test_a_card_given_with_a_scanned_zone(hub: Hub, page: Page) -> None:
    page.goto(hub.console + "/check")
    page.fill("#mrz-abtc", "NZ0000101")
    page.focus("#mrz")
    scan(page, zone("LA900001"))
    expect(page.locator("#verdict-value")).to_have_text("CLEAR")
    expect(page.locator("#abtc-verdict")).to_have_text("USABLE at the AUS lane")


def test_a_bad_card_number_is_named_and_nothing_is_checked(hub: Hub, page: Page) -> None:
    check_with_card(page, hub, "NZL", "LA900001", "NZ*01")
    expect(page.locator("#fields-form")).to_contain_text("number: only letters")
    assert page.locator("#verdict").count() == 0
