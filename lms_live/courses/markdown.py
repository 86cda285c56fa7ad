"""Markdown of course descriptions and lesson bodies, rendered safely.

CommonMark (markdown-it-py) with raw HTML disabled: tags written by an author come out as
text, and link/image targets are checked by markdown-it's `validateLink` (no `javascript:`,
`vbscript:`, `file:` or non-image `data:` URLs). Tables and strikethrough are on. Links get
`rel="nofollow noopener"`. The output is meant for `innerHTML` of a page with the project's
strict CSP.
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)


def _link_open(
    self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    tokens[idx].attrSet("rel", "nofollow noopener")
    return self.renderToken(tokens, idx, options, env)


_md.add_render_rule("link_open", _link_open)


def render(text: str) -> str:
    """Markdown to safe HTML ("" for empty text)."""
    if not text.strip():
        return ""
    html: Any = _md.render(text)
    return str(html)
