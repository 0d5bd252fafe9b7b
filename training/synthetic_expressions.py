"""The demo head over random expressions as a deferred dataset, rendered by Cycles through the add-on's own
"render training data" (the character itself as the target pass): what the embedded default renderer and the
quality benchmark's deferred half learn from, with no downloaded weights.

``ExpressionSetSettings`` fixes the character's look (the demo head's default, or painted lips whose mouth line
opens with the jaw), the cameras (an orbit over the face's side), the expressions (random rig expressions: jaw,
smile, blink, brow and pucker keys and the face bones) and the split held out of training.
Besides the dataset as written (``full``: the geometry passes come from the posed head), ``neutral_proxy_dataset``
makes its copy over the head at rest, where only the expression code can tell the renderer the expression.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from blender_addon.core.demo_appearance import AppearanceParams
from training.deferred.dataset import HoldOut
from training.synthetic_heads import blender_output_discarded


PAINTED_MOUTH = AppearanceParams(lip_colour=(0.45, 0.12, 0.12))
"""The look of the quality benchmark's character: the demo head with painted lips whose dark mouth line opens
as the jaw drops, so that its expressions change the mouth's pixels and not only the chin's outline."""


@dataclass(frozen=True)
class ExpressionSetSettings:
    views: int = 10
    expressions: int = 30
    resolution: int = 32
    held_out_views: tuple[str, ...] = ("view_002", "view_007")
    held_out_frame_stride: int = 5
    """Every ``held_out_frame_stride``-th expression (all views) is held out, besides ``held_out_views``."""
    camera_seed: int = 2
    expression_seed: int = 3
    look: AppearanceParams = AppearanceParams()

    @property
    def hold_out(self) -> HoldOut:
        return HoldOut(self.held_out_views, self.held_out_frame_stride)


def render_expression_set(folder: Path, settings: ExpressionSetSettings, neutral: bool = False) -> dict[str, Path]:
    """A fresh scene with the average demo head rendered into ``folder/full`` (and, with ``neutral``, its
    neutral-proxy copy ``folder/neutral``); returns the dataset folders by name."""
    import bpy

    from blender_addon.blender.condition_render import BundleRequest, render_bundle
    from blender_addon.blender.demo_head import add_demo_head
    from blender_addon.core.view_plan import OrbitSettings, plan_orbit_views

    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = add_demo_head(bpy.context, look=settings.look)
    size = settings.resolution
    views = plan_orbit_views(OrbitSettings(views=settings.views, yaw_min=-75.0, yaw_max=75.0, pitch_min=-15.0, pitch_max=20.0,
                                           jitter_degrees=3.0, seed=settings.camera_seed), size, size)
    requests = {"full": BundleRequest(rig.name, folder / "full", views, size, size, target=rig.name,
                                      random_expressions=settings.expressions, seed=settings.expression_seed)}
    if neutral:
        requests["rest"] = BundleRequest(rig.name, folder / "rest", views, size, size)
    with blender_output_discarded():
        for request in requests.values():
            for _ in render_bundle(request, bpy.context.scene):
                pass
    datasets = {"full": folder / "full"}
    if neutral:
        datasets["neutral"] = neutral_proxy_dataset(folder / "full", folder / "rest", folder / "neutral")
    return datasets


def neutral_proxy_dataset(posed: Path, rest: Path, out: Path) -> Path:
    """``posed``'s renders (targets, expression codes, landmarks) over the geometry passes of the same view at rest."""
    from blender_addon.formats.condition_bundle import read_bundle, write_bundle_manifest

    shutil.copytree(posed, out)
    rest_bundle = read_bundle(rest)
    rest_passes = {render.view: render.passes for render in rest_bundle.renders}
    bundle = read_bundle(out)
    for render in bundle.renders:
        for name in ("depth", "normal", "canonical", "mask"):
            shutil.copyfile(rest / rest_passes[render.view][name], out / render.passes[name])
    write_bundle_manifest(out, bundle)
    return out


def zeroed_expressions(data: Path, out: Path) -> Path:
    """A copy of the dataset whose expression codes are all zero (the renderer learns without them)."""
    from blender_addon.formats.condition_bundle import read_bundle, write_bundle_manifest

    shutil.copytree(data, out)
    bundle = read_bundle(out)
    bundle = replace(bundle, frames=[replace(frame, expression=[0.0] * len(frame.expression)) for frame in bundle.frames])
    write_bundle_manifest(out, bundle)
    return out
