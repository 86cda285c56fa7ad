"""Join codes of live sessions and the nicknames players join with.

Pure (no database or I/O). Invariants:
- a join code is CODE_LENGTH characters of ALPHABET (no 0/O or 1/I to misread), drawn with
  `secrets`; `normalize_code` accepts what people type (any case, spaces, dashes) and returns
  either such a code or None;
- a nickname is NFKC-normalised, its whitespace runs collapsed to one space and stripped, then
  2..24 characters with no control, format (zero-width, bidi), surrogate, private-use or
  unassigned character; `clean_nickname` returns it or raises NicknameRefused with one reason;
- the offensive-word filter matches a folded form (casefolded, accents and leetspeak undone,
  letters only, spaced-out single letters joined): entries of up to 3 letters as whole words,
  longer ones anywhere in a word except inside a few innocent words ("Scunthorpe"). The lists
  are stored rot13-encoded so this file does not read as offensive.
"""

from __future__ import annotations

import codecs
import re
import secrets
import unicodedata
from typing import Literal

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
NICKNAME_MIN = 2
NICKNAME_MAX = 24

RefusalReason = Literal["too_short", "too_long", "invalid_characters", "offensive"]

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_CODE_NOISE = re.compile(r"[\s\-]+")
_LETTER_RUN = re.compile(r"[^\W\d_]+")
_LEET = str.maketrans("013457@$", "oieastas")
_WHOLE_WORD_MAX = 3


def _rot13(words: str) -> tuple[str, ...]:
    return tuple(codecs.decode(words, "rot13").split())


_OFFENSIVE = _rot13(
    "nff snt phz gvg xxx shx spx wnc "
    "shpx fuvg phag ovgpu pbpx qvpx chffl gjng jnax juber fyhg fxnax onfgneq nffubyr obyybpxf "
    "gbffre oryyraq qvyqb oybjwbo unaqwbo wvmm cbea cvff avttre avttn snttbg ergneq genaal puvax "
    "fcvp xvxr tbbx pbba cnxv jrgonpx ornare anmv"
)
_WHOLE_WORDS = frozenset(w for w in _OFFENSIVE if len(w) <= _WHOLE_WORD_MAX)
_SUBSTRINGS = tuple(w for w in _OFFENSIVE if len(w) > _WHOLE_WORD_MAX)
# Innocent words (or their common stems) that contain a longer entry: blanked before matching.
_INNOCENT = _rot13(
    "fphagubecr crnpbpx unapbpx uvgpupbpx jbbqpbpx onopbpx fuhggyrpbpx tnzrpbpx jrngurepbpx "
    "fgbcpbpx pbpxcvg pbpxgnvy pbpxngbb pbpxngvry pbpxebnpu pbpxarl pbpxrery pbpxyr qvpxraf "
    "qvpxvafba qvpxfba qvpxrl gjngre fjnax favttre avttneq ergneqnag enppbba enpbba "
    "pbpbba glpbba cnxvfgna fcvpr fcvpl fcvpv fcvph fcvpn anmve anmvz chfflpng "
    "zngfhfuvgn xvabfuvgn lnznfuvgn zbevfuvgn fuvgnxr"
)


class NicknameRefused(ValueError):
    """A nickname that cannot be used, with the reason shown to the player."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(f"nickname refused: {reason}")
        self.reason: RefusalReason = reason


def new_code() -> str:
    """A fresh random join code (uniqueness among open sessions is the caller's)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str | None:
    """The join code someone typed, in canonical form, or None if it cannot be one."""
    code = _CODE_NOISE.sub("", text.strip().upper())
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def clean_nickname(text: str, *, filter_offensive: bool) -> str:
    """The nickname as it will be shown, or NicknameRefused saying why it cannot be."""
    name = " ".join(unicodedata.normalize("NFKC", text).split())
    if any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in name):
        raise NicknameRefused("invalid_characters")
    if len(name) < NICKNAME_MIN:
        raise NicknameRefused("too_short")
    if len(name) > NICKNAME_MAX:
        raise NicknameRefused("too_long")
    if filter_offensive and _is_offensive(name):
        raise NicknameRefused("offensive")
    return name


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_LEET)


def _candidate_words(name: str) -> set[str]:
    """Each token's letters, its letter runs, and runs of spaced-out single letters joined."""
    words: set[str] = set()
    spelled: list[str] = []
    for token in _fold(name).split():
        letters = "".join(c for c in token if c.isalpha())
        words.add(letters)
        words.update(_LETTER_RUN.findall(token))
        if len(letters) == 1:
            spelled.append(letters)
            continue
        words.add("".join(spelled))
        spelled = []
    words.add("".join(spelled))
    words.discard("")
    return words


def _is_offensive(name: str) -> bool:
    words = _candidate_words(name)
    if not words.isdisjoint(_WHOLE_WORDS):
        return True
    for word in words:
        blanked = word
        for innocent in _INNOCENT:
            blanked = blanked.replace(innocent, "|")
        if any(entry in blanked for entry in _SUBSTRINGS):
            return True
    return False
