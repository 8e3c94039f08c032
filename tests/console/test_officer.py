"""An officer at the console, in a real headless Chromium, against a real hub process.

Development mode (no TLS): the local user is officer and operator. Documents come from
fixtures/records (New Zealand's SQL store), the Philippines' node is a real ``rmas provider
serve`` process, the United States' node is down (INCOMPLETE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from rmas.mrz import Layout
from tests.console.conftest import Hub, Visits, fill_fields, scan, zone


@dataclass(frozen=True)
class Case:
    state: str
    number: str
    verdict: str
    directive: str
    #: (provider, status or outcome) expected among the sources.
    source: tuple[str, str]


CLEAN = Case("NZL", "LA900001", "CLEAR", "OK TO BOARD", ("NZL", "NO_RECORD"))
STOLEN = Case("NZL", "LA000002", "ALERT", "DO NOT BOARD", ("NZL", "STOLEN"))
STOLEN_NODE = Case("PHL", "P0000002C", "ALERT", "DO NOT BOARD", ("PHL", "STOLEN"))
INCOMPLETE = Case("USA", "500000002", "INCOMPLETE", "CONTACT AUTHORITY", ("USA", "UNAVAILABLE"))


def expect_answer(page: Page, case: Case) -> None:
    expect(page.locator("#verdict-value")).to_have_text(case.verdict)
    expect(page.locator("#directive")).to_have_text(case.directive)
    colour = {"CLEAR": "clear", "ALERT": "alert", "INCOMPLETE": "incomplete"}[case.verdict]
    expect(page.locator("#verdict")).to_have_class(re.compile(rf"\b{colour}\b"))
    expect(page.locator("#doc-number")).to_have_text(case.number)
    expect(page.locator("#doc-state")).to_have_text(case.state)
    provider, shown = case.source
    row = page.locator(f'tr.source[data-provider="{provider}"]').first
    expect(row).to_contain_text(shown)
    assert page.url.endswith("/check")


@pytest.mark.parametrize("case", [CLEAN, STOLEN, STOLEN_NODE, INCOMPLETE], ids=lambda c: c.verdict
                         + "-" + c.state)  # fmt: skip
def test_check_by_fields(hub: Hub, page: Page, case: Case) -> None:
    page.goto(hub.console + "/check")
    fill_fields(page, case.state, case.number)
    expect_answer(page, case)


def test_a_stolen_document_shows_who_reported_it_and_whom_to_call(hub: Hub, page: Page) -> None:
    page.goto(hub.console + "/check")
    fill_fields(page, "NZL", "LA000002", surname="SMITH", given_names="WEI")
    row = page.locator('tr.source[data-provider="NZL"]')
    for shown in ("STOLEN", "Department of Internal Affairs (NZ)", "2024-11-27", "NZL-000002",
                  "NZ Customs 24/7 document desk +64 4 000 0000", "ms"):  # fmt: skip
        expect(row).to_contain_text(shown)
    expect(page.locator("#issuer")).to_contain_text("were consulted")


def test_bad_fields_are_named_and_kept_for_correction(hub: Hub, page: Page) -> None:
    page.goto(hub.console + "/check")
    fill_fields(page, "XXZ", "LA00*0002")
    expect(page.locator("#fields-form .error").first).to_be_visible()
    expect(page.locator("#fields-form")).to_contain_text("issuing_state: unknown state code")
    expect(page.locator("#fields-form")).to_contain_text("number: only letters")
    expect(page.locator("#number")).to_have_value("LA00*0002")
    assert page.locator("#verdict").count() == 0


@pytest.mark.parametrize("case", [CLEAN, STOLEN, STOLEN_NODE, INCOMPLETE], ids=lambda c: c.verdict
                         + "-" + c.state)  # fmt: skip
def test_check_by_mrz_typed_like_a_scanner(hub: Hub, page: Page, case: Case) -> None:
    page.goto(hub.console + "/")  # the home page of an officer is the check page
    scan(page, zone(case.number, case.state))
    expect_answer(page, case)
    expect(page.locator("#digits tr.digit.refuted")).to_have_count(0)
    # The answer page is ready for the next document: the zone is focused again.
    assert page.evaluate("document.activeElement.id") == "mrz"


def test_a_td1_card_zone_is_checked_when_its_third_line_is_entered(hub: Hub, page: Page) -> None:
    page.goto(hub.console + "/check")
    lines = zone("LA000002", layout=Layout.TD1)
    scan(page, lines)
    expect_answer(page, STOLEN)


def test_a_misread_digit_is_highlighted_and_its_ocr_candidate_checked(hub: Hub, page: Page) -> None:
    """A scanner read the stolen LA000002 as LA0000O2: the number's check digit is refuted, and
    the OCR candidate the hub also checked is the stolen passport."""
    line1, line2 = zone("LA000002")
    misread = line2[:6] + "O" + line2[7:]
    page.goto(hub.console + "/check")
    scan(page, [line1, misread])
    expect(page.locator("#verdict-value")).to_have_text("ALERT")
    expect(page.locator('#digits tr[data-digit="document_number"]')).to_have_class(
        re.compile(r"\brefuted\b")
    )
    expect(page.locator('#digits tr[data-digit="birth_date"]')).to_have_class(
        re.compile(r"\bverified\b")
    )
    expect(page.locator("#zone .refuted").first).to_contain_text("LA0000O2")
    expect(page.locator("#candidates")).to_contain_text("LA000002")
    candidate = page.locator('tr.source[data-provider="NZL"]', has_text="OCR candidate LA000002")
    expect(candidate).to_contain_text("STOLEN")


def test_a_bad_check_digit_on_a_clean_document_is_never_clear(hub: Hub, page: Page) -> None:
    line1, line2 = zone(CLEAN.number)
    wrong = str((int(line2[9]) + 1) % 10)
    page.goto(hub.console + "/check")
    scan(page, [line1, line2[:9] + wrong + line2[10:]])
    expect(page.locator("#verdict-value")).to_have_text("INVALID_DATA")
    expect(page.locator("#directive")).to_have_text("INSUFFICIENT DATA")
    expect(page.locator("#verdict")).to_have_class(re.compile(r"\binvalid\b"))
    row = page.locator('#digits tr[data-digit="document_number"]')
    expect(row).to_have_class(re.compile(r"\brefuted\b"))
    expect(row).to_contain_text(wrong)


def test_ctrl_enter_checks_an_incomplete_zone_and_its_problem_is_shown(
    hub: Hub, page: Page
) -> None:
    page.goto(hub.console + "/check")
    page.keyboard.type("P<NZLTESTER<<ALEX")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    expect(page.locator("#mrz-form .error")).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "mrz"


def test_find_a_check_by_its_id(hub: Hub, page: Page) -> None:
    page.goto(hub.console + "/check")
    fill_fields(page, STOLEN.state, STOLEN.number)
    check_id = page.locator("#check-id").inner_text()
    page.goto(hub.console + "/find")
    assert page.evaluate("document.activeElement.id") == "check_id"
    page.keyboard.type(check_id)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    entry = page.locator("#entries .entry")
    expect(entry).to_have_count(1)
    expect(entry.locator(".entry-verdict")).to_have_text("ALERT")
    expect(entry).to_contain_text("DO NOT BOARD")
    expect(entry).to_contain_text("NZL")
    expect(entry).to_contain_text("STOLEN")
    expect(entry).to_contain_text("insecure:127.0.0.1 (officer), document")
    assert STOLEN.number not in page.content()  # the trail keeps no number in clear
    # The answer's link to its audit entry finds the same check.
    page.go_back()
    page.goto(hub.console + f"/checks/{check_id}")
    expect(page.locator("#entries .entry .entry-verdict")).to_have_text("ALERT")


def test_find_an_unknown_or_malformed_check_id(hub: Hub, page: Page) -> None:
    page.goto(hub.console + "/find")
    page.fill("#check_id", "0" * 32)
    with page.expect_navigation():
        page.press("#check_id", "Enter")
    expect(page.locator("#not-found")).to_be_visible()
    page.fill("#check_id", "LA000002")
    with page.expect_navigation():
        page.press("#check_id", "Enter")
    expect(page.locator("#find-error")).to_contain_text("32 hexadecimal digits")


def test_no_document_data_in_any_url_or_the_hub_log(hub: Hub, page: Page, visits: Visits) -> None:
    headers: list[dict[str, str]] = []
    page.on("response", lambda r: headers.append(r.headers) if r.request.method == "POST" else None)
    page.goto(hub.console + "/check")
    fill_fields(page, "NZL", "LA000002", surname="SMITH", given_names="WEI")
    check_id = page.locator("#check-id").inner_text()
    lines = zone("P0000002C", "PHL", surname="GARCIA", given="MARIA")
    scan(page, lines)
    expect(page.locator("#verdict-value")).to_have_text("ALERT")
    page.goto(hub.console + "/find")
    page.fill("#check_id", check_id)
    with page.expect_navigation():
        page.press("#check_id", "Enter")
    page.go_back()
    page.goto(hub.console + "/status")
    expect(page.locator("#providers")).to_be_visible()

    secrets = ["LA000002", "P0000002C", "SMITH", "GARCIA", "MARIA", lines[0], lines[1]]
    assert len(visits.urls) > 5
    for url in visits.urls:
        for secret in secrets:
            assert secret not in url.upper(), url
    history = page.evaluate("history.length")
    assert history >= 3
    assert headers and all(h.get("cache-control") == "no-store" for h in headers)
    log = hub.logs()
    assert "console_started" in log  # the log is the hub's, and it was written
    for secret in secrets:
        assert secret not in log


def test_a_form_posted_from_another_site_is_refused(hub: Hub, page: Page) -> None:
    response = page.request.post(
        hub.console + "/check",
        form={"mode": "fields", "issuing_state": "NZL", "number": "LA000002"},
        headers={"Origin": "https://elsewhere.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert response.status == 403
    assert "another site" in response.text()


def test_every_page_forbids_caching_and_framing(hub: Hub, page: Page) -> None:
    for path in ("/check", "/find", "/status"):
        response = page.goto(hub.console + path)
        assert response is not None and response.status == 200
        h = response.headers
        assert h["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["x-frame-options"] == "DENY"


def test_the_local_user_is_officer_and_operator_and_can_verify_the_trail(
    hub: Hub, page: Page
) -> None:
    page.goto(hub.console + "/status")
    expect(page.locator("#who")).to_contain_text("officer, operator")
    expect(page.locator("#audit-verified")).to_contain_text("not verified")
    with page.expect_navigation():
        page.locator("#verify-form button").press("Enter")
    expect(page.locator("#audit-verified")).to_contain_text("intact")
    expect(page.locator("#audit-head")).to_have_text(re.compile(r"^\d+:[0-9a-f]{64}$"))
