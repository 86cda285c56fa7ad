"""Join codes (alphabet, length, spread, what people type) and nicknames (cleaning, every
refusal reason, the offensive-word filter's evasions and its Scunthorpe cases). Offensive
examples are written rot13 so this file does not read as offensive."""

from __future__ import annotations

import codecs
from collections import Counter

import pytest

from lms_live.live.codes import (
    ALPHABET,
    CODE_LENGTH,
    NicknameRefused,
    clean_nickname,
    new_code,
    normalize_code,
)


def r13(text: str) -> str:
    return codecs.decode(text, "rot13")


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


def refusal(text: str, *, filter_offensive: bool = True) -> str:
    with pytest.raises(NicknameRefused) as caught:
        clean_nickname(text, filter_offensive=filter_offensive)
    return caught.value.reason


def test_codes_use_the_alphabet_and_the_length() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert not set("0O1I") & set(ALPHABET)
    for _ in range(1000):
        code = new_code()
        assert len(code) == CODE_LENGTH
        assert set(code) <= set(ALPHABET)


def test_ten_thousand_codes_show_no_obvious_bias() -> None:
    codes = [new_code() for _ in range(10_000)]
    assert len(set(codes)) >= 9_990  # 32**6 codes: a handful of repeats at most
    overall = Counter("".join(codes))
    assert set(overall) == set(ALPHABET)
    expected = 10_000 * CODE_LENGTH / len(ALPHABET)  # 1875, standard deviation about 43
    assert all(0.75 * expected < n < 1.25 * expected for n in overall.values())
    for position in range(CODE_LENGTH):
        assert set(Counter(code[position] for code in codes)) == set(ALPHABET)


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        (" abc-def ", "ABCDEF"),
        ("ABCDEF", "ABCDEF"),
        ("abc def", "ABCDEF"),
        ("ab-cd-ef", "ABCDEF"),
        ("\tk7m 2pq\n", "K7M2PQ"),
        ("ABCDE0", None),
        ("ABCDEO", None),
        ("ABCDE1", None),
        ("ABCDEI", None),
        ("ABCDE", None),
        ("ABCDEFG", None),
        ("ABC_DEF", None),
        (full_width("ABCDEF"), None),
        ("", None),
        ("   ", None),
    ],
)
def test_normalize_code(typed: str, code: str | None) -> None:
    assert normalize_code(typed) == code


def test_a_new_code_typed_in_lowercase_normalizes_back() -> None:
    code = new_code()
    assert normalize_code(code) == code
    assert normalize_code(f" {code[:3].lower()}-{code[3:].lower()} ") == code


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("  Ada \t\n  Lovelace  ", "Ada Lovelace"),
        ("Ada\u00a0\u00a0Lovelace", "Ada Lovelace"),  # no-break spaces
        (full_width("Ada"), "Ada"),  # NFKC
        ("Zoë", "Zoë"),
        (full_width("Jo") + "\u3000" + full_width("Bo"), "Jo Bo"),
        ("李小龙", "李小龙"),
        ("Al", "Al"),
        ("x" * 24, "x" * 24),
        ("Scunthorpe", "Scunthorpe"),
        ("Assistant", "Assistant"),
        ("Class act", "Class act"),
        ("Cocktail Dickens", "Cocktail Dickens"),
        ("Raccoon from Pakistan", "Raccoon from Pakistan"),
        ("Spicy Grape", "Spicy Grape"),
        ("Saltwater", "Saltwater"),
        ("Matsushita", "Matsushita"),
    ],
)
def test_clean_nickname_accepts_and_tidies(typed: str, shown: str) -> None:
    assert clean_nickname(typed, filter_offensive=True) == shown


@pytest.mark.parametrize("typed", ["", "a", "   b   ", "\u00a0", "é"])
def test_too_short(typed: str) -> None:
    assert refusal(typed) == "too_short"


@pytest.mark.parametrize("typed", ["x" * 25, "Ada " * 7, "ﬃ" * 9])  # the ligature expands
def test_too_long(typed: str) -> None:
    assert refusal(typed) == "too_long"


@pytest.mark.parametrize(
    "typed",
    [
        "Ali\u200bce",  # zero-width space
        "Ali\u200dce",  # zero-width joiner
        "\ufeffAlice",  # byte order mark
        "\u202eecilA",  # right-to-left override
        "Ali\u2066ce",  # bidi isolate
        "Al\x00ice",
        "\x1b[31mAlice",
        "Ali\x7fce",
        "Alice\ue000",  # private use
        "Alice\u0378",  # unassigned
        "Alice\ud800",  # lone surrogate
        "\u200b\u200b",
    ],
)
def test_invalid_characters(typed: str) -> None:
    assert refusal(typed) == "invalid_characters"


@pytest.mark.parametrize(
    "typed",
    [
        r13("shpx"),
        r13("ShPx"),
        r13("S.H.P.X"),
        r13("s h p x"),
        r13("s-h-p-x") + " you",
        r13("ohyyfuvg"),
        r13("kKphagKk"),
        r13("5u1g") + "99",
        r13("$uvg"),
        r13("süçx"),  # accents undone
        full_width(r13("SHPX")),  # NFKC
        r13("n55"),
        r13("ovt-nff"),
        r13("N.F.F"),
        r13("nff") + " 123",
        r13("avttre"),
        r13("snttbg"),
        r13("ovgpu") + "y",
        r13("fphagubecr phag"),  # an innocent word next to the real one
    ],
)
def test_offensive_variants_are_refused(typed: str) -> None:
    assert refusal(typed) == "offensive"
    assert clean_nickname(typed, filter_offensive=False)


def test_refusal_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError, match="too_long"):
        clean_nickname("y" * 30, filter_offensive=False)
