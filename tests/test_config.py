from __future__ import annotations

from pathlib import Path

import pytest

from rmas.config import load_config, parse_config
from rmas.errors import ConfigError
from rmas.providers import Scope
from rmas.verdict import IncompletePolicy

EXAMPLE = """
[hub]
listen = "127.0.0.1:50051"
deadline_ms = 1500
on_incomplete = "contact"   # or "board"
[[providers]]
id = "NZL"
kind = "sql"
url = "sqlite+aiosqlite:///var/nzl.db"
issuing_states = ["NZL"]
contact = "NZ 24/7 desk +64 4 000 0000"
"""


def test_the_documented_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(EXAMPLE)
    cfg = load_config(path)
    assert cfg.hub.listen == "127.0.0.1:50051"
    assert cfg.hub.deadline_ms == 1500
    assert IncompletePolicy.CONTACT is cfg.hub.on_incomplete
    (p,) = cfg.providers
    assert ("NZL", "sql", frozenset({"NZL"}), Scope.ISSUER) == (
        p.id,
        p.kind,
        p.issuing_states,
        p.scope,
    )
    assert p.option("url", str) == "sqlite+aiosqlite:///var/nzl.db"
    assert str(tmp_path) == p.base_dir


def test_defaults_apply_when_the_hub_table_is_missing() -> None:
    cfg = parse_config("")
    assert cfg.hub.deadline_ms == 1500
    assert cfg.providers == ()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[hub]\ndeadline_ms = 'fast'", "hub.deadline_ms"),
        ("[hub]\ndeadline_ms = 5", "hub.deadline_ms"),
        ("[hub]\non_incomplete = 'maybe'", "hub.on_incomplete"),
        ("[hub]\ncoalesce_ms = -1", "hub.coalesce_ms"),
        ("[hub]\ncoalesce_ms = 25", "hub.coalesce_ms"),
        ("[hub]\ncoalesce_ms = 'short'", "hub.coalesce_ms"),
        ("[hub]\nlisten = 'nowhere'", "hub.listen"),
        ("[hub]\nlisten_on = '127.0.0.1:1'", "hub.listen_on"),
        ("[hubb]\n", "hubb"),
        ("[[providers]]\nkind = 'sql'\nissuing_states=['NZL']", "providers[0].id"),
        ("[[providers]]\nid = 'x'\nissuing_states=['NZL']", "providers[0].kind"),
        ("[[providers]]\nid='x'\nkind='sql'", "providers[0].issuing_states"),
        ("[[providers]]\nid='x'\nkind='sql'\nissuing_states=['NZL','QQQ']",
         "providers[0].issuing_states[1]"),
        ("[[providers]]\nid='x'\nkind='sql'\nscope='galactic'", "providers[0].scope"),
        ("[[providers]]\nid='x'\nkind='sltd'\nscope='global'\nissuing_states=['NZL']",
         "providers[0].issuing_states"),
        ("[[providers]]\nid='x'\nkind='sql'\nissuing_states=['NZL']\nrequired=false",
         "providers[0].required"),
        ("[[providers]]\nid='x'\nkind='sql'\nissuing_states=['NZL']\nmax_batch=-1",
         "providers[0].max_batch"),
        ("[[providers]]\nid='x'\nkind='sql'\nissuing_states=['NZL']\n"
         "[[providers]]\nid='x'\nkind='sql'\nissuing_states=['AUS']", "providers[1].id"),
        ("[hub\n", "<config>"),
    ],
)  # fmt: skip
def test_errors_name_the_key_at_fault(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert key == info.value.key


def test_provider_options_report_their_key() -> None:
    cfg = parse_config("[[providers]]\nid='x'\nkind='sql'\nissuing_states=['NZL']\nurl=3")
    with pytest.raises(ConfigError) as info:
        cfg.providers[0].option("url", str)
    assert info.value.key == "providers[0].url"


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_iapi_codes_and_limits_are_configurable() -> None:
    cfg = parse_config(
        "[iapi]\nhub_id = 'AUHUB'\ncontact_authority_code = '8Z'\n"
        "contact_authority_text = 'CALL ABF'\nmax_bytes = 4096\n"
    )
    assert cfg.iapi.hub_id == "AUHUB"
    assert cfg.iapi.codes.contact_authority == ("8Z", "CALL ABF")
    assert cfg.iapi.codes.do_not_board == ("1Z", "NO BOARD")
    assert cfg.iapi.max_bytes == 4096


def test_iapi_resends_visas_unchecked_and_senders_are_configurable() -> None:
    cfg = parse_config(
        "[iapi]\nresend_window_s = 60\nvisa_issuer = 'CN'\nunchecked_code = '0Y'\n"
        "[[callers]]\nidentity = 'rmas://airline/QF'\nrole = 'airline'\n"
        "senders = ['QF', 'QANTAS']\n"
    )
    assert cfg.iapi.resend_window_s == 60.0
    assert cfg.iapi.visa_issuer == "CHN"
    assert cfg.iapi.codes.unchecked == ("0Y", "OK TO BOARD - NOT CHECKED")
    assert cfg.callers[0].senders == ("QF", "QANTAS")
    defaults = parse_config("")
    assert 0 < defaults.iapi.resend_window_s <= 600  # minutes, not forever
    assert defaults.iapi.visa_issuer == ""


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[iapi]\nok_to_board_code = 'TOOLONG'", "iapi.ok_to_board_code"),
        ("[iapi]\nmax_bytes = 1", "iapi.max_bytes"),
        ("[iapi]\ncolour = 'blue'", "iapi.colour"),
        ("[iapi]\nresend_window_s = -1", "iapi.resend_window_s"),
        ("[iapi]\nvisa_issuer = 'XQZ'", "iapi.visa_issuer"),
        ("[[callers]]\nidentity = 'a'\nrole = 'airline'\nsenders = [1]", "callers[0].senders"),
    ],
)
def test_iapi_errors_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.key == key


def test_the_hubs_economy_and_abtc_providers() -> None:
    cfg = parse_config(
        '[hub]\neconomy = "nz"\n[[providers]]\nid = "NZL"\nkind = "sql"\nurl = "x"\n'
        'issuing_states = ["NZL"]\nabtc = true\n'
    )
    assert cfg.hub.economy == "NZL"
    assert cfg.providers[0].abtc and cfg.providers[0].info.abtc
    assert parse_config("").hub.economy == ""
    # Absent: asked about cards if the kind can answer them; false: never.
    base = '[[providers]]\nid = "X"\nkind = "sql"\nurl = "x"\nissuing_states = ["NZL"]\n'
    assert parse_config(base).providers[0].info.abtc
    assert not parse_config(base + "abtc = false\n").providers[0].info.abtc
    with pytest.raises(ConfigError) as err:
        parse_config('[hub]\neconomy = "QQQ"\n')
    assert err.value.key == "hub.economy"
    with pytest.raises(ConfigError) as err:
        parse_config('[[providers]]\nid = "X"\nkind = "fake"\nissuing_states = ["NZL"]\nabtc = 1\n')
    assert err.value.key == "providers[0].abtc"


def test_abtc_on_a_kind_without_card_lookups_is_refused() -> None:
    from rmas.plugins import build_providers

    cfg = parse_config(
        '[[providers]]\nid = "X"\nkind = "fake"\nissuing_states = ["NZL"]\nabtc = true\n'
    )
    with pytest.raises(ConfigError) as err:
        build_providers(cfg.providers)
    assert err.value.key == "providers[0].abtc"
    assert "does not answer ABTC" in err.value.message
