"""Writing a machine-readable zone with correct check digits (tests, fixtures, the demo)."""

from __future__ import annotations

from rmas.mrz.charset import check_digit
from rmas.mrz.layouts import Layout


def _pad(s: str, n: int) -> str:
    return (s + "<" * n)[:n]


def _name_field(surname: str, given: str, n: int) -> str:
    primary = "<".join(surname.upper().split())
    secondary = "<".join(given.upper().split())
    return _pad(f"{primary}<<{secondary}" if secondary else primary, n)


def compose(
    layout: Layout,
    *,
    document_code: str,
    issuing_state: str,
    surname: str,
    given_names: str,
    document_number: str,
    nationality: str,
    birth_date: str,
    sex: str,
    expiry_date: str,
    optional_data: str = "",
    optional_data_2: str = "",
) -> list[str]:
    """Write a zone with correct check digits. Dates are YYMMDD; ``D`` becomes ``D<<``.

    TD1 and TD2 numbers longer than 9 characters use the long-number scheme.
    """
    code = _pad(document_code, 2)
    state = _pad(issuing_state, 3)
    nat = _pad(nationality, 3)
    number = document_number
    if layout in (Layout.TD3, Layout.MRV_A, Layout.TD2, Layout.MRV_B):
        width = 44 if layout in (Layout.TD3, Layout.MRV_A) else 36
        line1 = code + state + _name_field(surname, given_names, width - 5)
        if len(number) > 9 and layout is Layout.TD2:
            num_field = number[:9] + "<"
            opt = _pad(number[9:] + check_digit(number) + "<" + optional_data, 7)
        else:
            num_field = _pad(number, 9) + check_digit(_pad(number, 9))
            opt = optional_data
        head = num_field + nat + birth_date + check_digit(birth_date) + sex
        head += expiry_date + check_digit(expiry_date)
        if layout is Layout.TD3:
            opt14 = _pad(opt, 14)
            digit = "<" if not opt.strip("<") else check_digit(opt14)
            body = head + opt14 + digit
            line2 = body + check_digit(body[0:10] + body[13:20] + body[21:43])
        elif layout is Layout.TD2:
            body = head + _pad(opt, 7)
            line2 = body + check_digit(body[0:10] + body[13:20] + body[21:35])
        else:
            line2 = head + _pad(opt, width - 28)
        return [line1, line2]
    # TD1
    if len(number) > 9:
        num_field = number[:9] + "<"
        opt1 = _pad(number[9:] + check_digit(number) + "<" + optional_data, 15)
    else:
        num_field = _pad(number, 9) + check_digit(_pad(number, 9))
        opt1 = _pad(optional_data, 15)
    line1 = code + state + num_field + opt1
    l2 = birth_date + check_digit(birth_date) + sex + expiry_date + check_digit(expiry_date)
    l2 += nat + _pad(optional_data_2, 11)
    line2 = l2 + check_digit(line1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])
    return [line1, line2, _name_field(surname, given_names, 30)]
