"""What members typed, shown as they typed it: the one escape for every public message and
embed that carries a member's string (a style name, a file name, anything else)."""

from __future__ import annotations

import re

import discord

# A bracket or parenthesis not already escaped (preceded by an even number of backslashes).
_UNESCAPED_LINK_MARK = re.compile(r"(?<!\\)((?:\\\\)*)([\[\]()])")


def literal(text: str) -> str:
    """``text`` with Discord's markdown escaped, masked links included, so that it renders as
    the characters the member typed: no bold, no heading, no ``[label](https://…)`` link.

    ``escape_markdown`` escapes a masked link only when it sees one whole; every bracket and
    parenthesis is escaped here too, so no part of a name becomes a link with the text around
    it. Mentions are left to ``allowed_mentions``.
    """
    escaped = discord.utils.escape_markdown(text, ignore_links=False)
    return _UNESCAPED_LINK_MARK.sub(r"\1\\\2", escaped)
