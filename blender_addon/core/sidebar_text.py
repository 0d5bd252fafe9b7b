"""How much text fits the 3D viewport's sidebar at its default width, and wrapping to it.

Widths are in characters of the interface font at scale 1 in a sidebar of default width (about 200
pixels of panel content). They come from what Blender cut on screen (issue 17): a labelled text,
pointer or menu field gets a third of its row for the label ("Base model" showed as "Base mo…"),
a box line showed about 40 characters of lowercase text, two number fields in one row showed
"Yaw …". The figures below keep a margin under those, so text that fits here fits on screen.
"""

from __future__ import annotations

PANEL_CHARS = 34
"""A label or button across the whole panel."""
BOX_CHARS = 32
"""A label inside a box (boxes have their own padding)."""
ICON_CHARS = 3
"""What an icon in front of a text takes."""
FIELD_LABEL_CHARS = 8
"""The label of a text, pointer or menu field across the whole panel (a third of its width)."""
NUMBER_ARROW_CHARS = 4
"""What the arrows of a number field take from its text ("Label: value")."""


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces (a longer word is split)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])
