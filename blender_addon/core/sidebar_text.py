"""How much text fits the 3D viewport's sidebar at its default width, and wrapping to it.

Widths are in pixels of the interface font (11 px, UI scale 1) in a sidebar of default width; text
and sidebar scale together, so they hold at any UI scale. They come from what Blender cut on screen
(issue 17), measured with that font: a labelled text, pointer or menu field showed about 45 pixels
of its label ("Base mo…", "Style pri…", "Referen…"), a box line about 210 ("Deferred dataset
(p… detailed character)"), two number fields in one row less than 103 each ("Yaw …"). The figures
below keep a margin under those, so text that fits here fits on screen.
"""

from __future__ import annotations

from typing import Callable

FONT_SIZE = 11
"""The interface font's size in pixels at UI scale 1 (what ``blf`` measures with)."""
PANEL_WIDTH = 200
"""A label or button across the whole panel."""
BOX_WIDTH = 188
"""A label inside a box (boxes have their own padding)."""
ICON_WIDTH = 20
"""What an icon in front of a text takes."""
FIELD_LABEL_WIDTH = 42
"""The label of a text, pointer or menu field across the whole panel (longer ones go above the field)."""
NUMBER_ARROWS_WIDTH = 30
"""What the arrows and padding of a number field take from its text ("Label: value")."""


def wrap(text: str, width: float, measure: Callable[[str], float] = len) -> list[str]:
    """``text`` in lines at most ``width`` wide as ``measure`` counts (characters by default),
    broken at spaces; a word wider than a line is split."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while measure(word) > width and len(word) > 1:
            if line:
                lines.append(line)
                line = ""
            cut = max(1, max((end for end in range(1, len(word)) if measure(word[:end]) <= width), default=1))
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{line} {word}" if line else word
        if line and measure(candidate) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + ([line] if line else [])
