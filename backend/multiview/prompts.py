"""Prompts of one generated image: style + view-specific phrase + attribute phrases.

The view phrase comes from the camera's view class ("front view", "side view", "back view"), so
the diffusion model paints what the pose condition shows. For back views the negative prompt adds
the features that must not be seen from behind (a face, eyes, nose, mouth), which diffusion models
otherwise tend to paint onto the back of a head.
"""

from __future__ import annotations

from dataclasses import dataclass

from blender_addon.formats.cameras import ViewClassThresholds, view_class
from blender_addon.formats.condition_bundle import View
from blender_addon.formats.errors import FormatError

from .attributes import FACE_ONLY_CATEGORIES

DEFAULT_NEGATIVE_PROMPT = "lowres, blurry, deformed, bad anatomy, extra limbs, cropped head, watermark, text"
DEFAULT_BACK_VIEW_NEGATIVE = "face, eyes, nose, mouth, facial features"


@dataclass(frozen=True)
class PromptSettings:
    style: str
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    front_phrase: str = "front view"
    side_phrase: str = "side view"
    back_phrase: str = "back view"
    back_view_negative: str = DEFAULT_BACK_VIEW_NEGATIVE
    front_max_degrees: float | None = None
    """With both thresholds set, the view class is recomputed from the camera's yaw; otherwise the
    bundle's own view class is used."""
    back_min_degrees: float | None = None

    def __post_init__(self) -> None:
        if not self.style.strip():
            raise FormatError("style", "is empty", 'describe the style, e.g. "a 3D cartoon character head, Pixar style"')
        if (self.front_max_degrees is None) != (self.back_min_degrees is None):
            raise FormatError("front_max_degrees", "give both yaw thresholds or neither")
        if self.front_max_degrees is not None and not 0 <= self.front_max_degrees < self.back_min_degrees <= 180:
            raise FormatError("front_max_degrees", "needs 0 <= front_max_degrees < back_min_degrees <= 180")

    def view_class_of(self, view: View) -> str:
        if self.front_max_degrees is None:
            return view.view_class
        return view_class(view.yaw, ViewClassThresholds(self.front_max_degrees, self.back_min_degrees))

    def view_phrase(self, view_class_name: str) -> str:
        return {"front": self.front_phrase, "side": self.side_phrase, "back": self.back_phrase}[view_class_name]


def build_prompts(settings: PromptSettings, view_class_name: str, attributes: list[tuple[str, str]]) -> tuple[str, str]:
    """(prompt, negative prompt) for one image; back views leave out attributes of the hidden face."""
    visible = [option for category, option in attributes if not (view_class_name == "back" and category in FACE_ONLY_CATEGORIES)]
    parts = [settings.style.strip(), settings.view_phrase(view_class_name), *visible]
    prompt = ", ".join(part for part in parts if part)
    negatives = [settings.negative_prompt.strip()]
    if view_class_name == "back":
        negatives.append(settings.back_view_negative.strip())
    return prompt, ", ".join(part for part in negatives if part)
