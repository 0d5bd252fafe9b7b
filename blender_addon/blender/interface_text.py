"""Text as the sidebar draws it: its width in the interface font, and wrapping to a panel."""

from __future__ import annotations

import blf

from ..core.sidebar_text import FONT_SIZE, ICON_WIDTH, wrap

UI_FONT = 0
"""``blf``'s id of the interface font."""


def text_width(text: str) -> float:
    """Pixels ``text`` takes in the interface font at UI scale 1."""
    blf.size(UI_FONT, FONT_SIZE)
    return blf.dimensions(UI_FONT, text)[0]


def wrap_to(text: str, width: float, icon: bool = False) -> list[str]:
    """``text`` in lines that fit ``width`` pixels (less an icon's width when it has one)."""
    return wrap(text, width - (ICON_WIDTH if icon else 0), text_width)
