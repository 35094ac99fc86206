"""Saved styles' names: what makes two names the same name, and what a name may not contain.

A name is normalised (NFKC, spaces collapsed) before it is kept; two names are the same when
their keys are (NFKC, then case folded, variation selectors ignored). Control, format and other
invisible characters (a zero-width space, a right-to-left override, a Hangul filler) are
refused, and so is a name with no visible character: each would let a look-alike of another
member's style be saved, and picked from autocomplete by mistake.
"""

from __future__ import annotations

import re
import unicodedata

from bot.errors import UserFacingError

# Names are 1-32 characters after normalisation, unique per server by `style_key`.
STYLE_NAME_LENGTH = 32

# Categories never allowed in a name: control, format (zero-width space and joiner, bidi
# overrides, tags), surrogates, private use, unassigned, line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters and symbols that render as nothing: Hangul fillers, the braille blank, the combining
# grapheme joiner, the Mongolian vowel separator.
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u180e")
# Variation selectors choose how a character is drawn (❤ or ❤️): kept in a name, not in its key.
_VARIATION = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
# What counts as seen: letters, digits, punctuation and symbols that are not blank.
_VISIBLE_CATEGORIES = ("L", "N", "P", "S")


class BadStyleName(UserFacingError):
    """A name that can't be saved; the message is one line saying why."""


def style_name(name: str) -> str:
    """``name`` as it is kept: NFKC, runs of spaces collapsed. Raises BadStyleName unless it is
    1 to STYLE_NAME_LENGTH characters with a visible one and no invisible or control one."""
    normal = normalised(name)
    if not 1 <= len(normal) <= STYLE_NAME_LENGTH:
        raise BadStyleName(
            f"A style name must be 1 to {STYLE_NAME_LENGTH} characters, not {len(normal)}."
        )
    hidden = next((c for c in normal if _hidden(c)), None)
    if hidden is not None:
        raise BadStyleName(
            "A style name can't contain invisible or control characters "
            f"(it has U+{ord(hidden):04X}); use letters, digits, spaces and symbols."
        )
    if not any(_visible(c) for c in normal):
        raise BadStyleName("A style name can't be only blank or invisible characters.")
    return normal


def style_key(name: str) -> str:
    """What makes two names the same name: NFKC, then case folded (Unicode-aware), spaces
    collapsed, variation selectors left out. Used for lookups too, whatever the member typed."""
    folded = unicodedata.normalize("NFKC", normalised(name).casefold())
    return _VARIATION.sub("", folded)


def normalised(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).split())


def migrated(name: str) -> str | None:
    """An older journal's name as it is kept now: normalised, invisible and control characters
    left out, cut to the length allowed; None when nothing visible is left."""
    kept = normalised("".join(c for c in normalised(name) if not _hidden(c)))
    kept = kept[:STYLE_NAME_LENGTH].rstrip()
    return kept if any(_visible(c) for c in kept) else None


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _REFUSED_CATEGORIES or char in _BLANK


def _visible(char: str) -> bool:
    return unicodedata.category(char).startswith(_VISIBLE_CATEGORIES) and char not in _BLANK
