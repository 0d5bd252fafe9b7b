"""Looks of the demo head's procedural material: skin tone, hair cap colour and shape, eye colour, painted lips."""

from __future__ import annotations

import colorsys
import random
from dataclasses import dataclass

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class AppearanceParams:
    skin_tone: Colour = (0.80, 0.57, 0.45)
    hair_colour: Colour = (0.10, 0.06, 0.04)
    hairline: float = 0.35
    """Height of the hairline above the eyes, as a fraction of the head's half height (-1..1)."""
    hair_back_drop: float = 0.6
    """How far the hair reaches down at the back of the head (0: a cap, 1: to the neck)."""
    eye_colour: Colour = (0.20, 0.35, 0.55)
    lip_colour: Colour | None = None
    """Painted lips around a dark mouth line (None: the plain skin of the demo head). The line lies on the
    jaw's side of the mouth, so it opens into a dark gap as the jaw drops: expressions then change how the
    mouth looks, not only the head's outline (the quality benchmark's expression character uses this)."""


def _hsv(rng: random.Random, hue: tuple[float, float], saturation: tuple[float, float], value: tuple[float, float]) -> Colour:
    return colorsys.hsv_to_rgb(rng.uniform(*hue), rng.uniform(*saturation), rng.uniform(*value))  # type: ignore[return-value]


def sample_appearance(seed: int) -> AppearanceParams:
    """A random look; the same seed gives the same look."""
    rng = random.Random(seed * 7919 + 13)
    return AppearanceParams(
        skin_tone=_hsv(rng, (0.03, 0.09), (0.25, 0.6), (0.25, 0.95)),
        hair_colour=_hsv(rng, (0.0, 1.0), (0.1, 0.9), (0.03, 0.9)),
        hairline=rng.uniform(0.15, 0.6),
        hair_back_drop=rng.uniform(0.0, 1.0),
        eye_colour=_hsv(rng, (0.05, 0.65), (0.3, 0.9), (0.15, 0.7)),
    )
