"""Condition passes of an imported neural-head (NPHM) proxy sequence (``proxy_import``).

Each requested scene frame renders that frame's object: its ``nphm_canonical`` attribute is the canonical pass
(head space already: NPHM's model box), its ``nphm_ambient`` attribute the ambient pass, depth, normals and mask
as for a rig, and the frame's NPHM expression code is the bundle's expression code. A target (the character
the proxy was fitted to, animated the same way) is rendered at the same frames. A proxy has no landmarks, so
its bundles have no pose pass: they condition the deferred renderer, not the pose ControlNet.

The cameras orbit the head box of the sequence's first frame, the same box whichever frames a bundle renders
(training renders and an animation's agree), and follow the head in frames that leave it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import bpy

from .. import __version__ as addon_version
from ..formats.cameras import HeadFrame
from ..formats.condition_bundle import ConditionBundle, Frame, Render, write_bundle_manifest
from ..formats.errors import FormatError
from . import rig as rig_data
from .condition_scene import ConditionScene, RenderSettings, SurfaceCoordinates
from .mesh_points import world_vertices
from .proxy_import import AMBIENT_ATTRIBUTE, CANONICAL_ATTRIBUTE, EXPRESSION_NAMES_PROPERTY, EXPRESSION_PROPERTY, FRAME_PROPERTY

if TYPE_CHECKING:
    from .condition_render import BundleRequest

IMPORT_HINT = "import the fitted sequence with Animate > Import NPHM Proxy (or 'render-conditions --nphm-proxy FOLDER')"


@dataclass
class ProxySequence:
    collection: bpy.types.Collection
    frames: dict[int, bpy.types.Object]
    """Scene frame -> the proxy object rendered on it, in frame order."""
    expression_names: list[str]
    has_ambient: bool

    @property
    def coordinates(self) -> SurfaceCoordinates:
        return SurfaceCoordinates(CANONICAL_ATTRIBUTE, canonical_in_head_space=True,
                                  ambient=AMBIENT_ATTRIBUTE if self.has_ambient else None)

    def code(self, frame: int) -> list[float]:
        return [float(value) for value in self.frames[frame][EXPRESSION_PROPERTY]]


def find_proxy(name: str) -> ProxySequence:
    """The imported proxy sequence in collection ``name``, checked: every frame object has the canonical
    attribute, all or none have ambient coordinates, and every code matches the sequence's layout."""
    collection = bpy.data.collections.get(name)
    if collection is None:
        raise FormatError("proxy", f"there is no collection named {name!r}", IMPORT_HINT)
    frames = {int(obj[FRAME_PROPERTY]): obj for obj in collection.objects if obj.type == "MESH" and FRAME_PROPERTY in obj}
    if not frames:
        raise FormatError("proxy", f"collection {name!r} holds no imported NPHM proxy frames", IMPORT_HINT)
    names = [str(item) for item in collection.get(EXPRESSION_NAMES_PROPERTY, [])]
    with_ambient = [obj.name for obj in frames.values() if AMBIENT_ATTRIBUTE in obj.data.attributes]
    for obj in frames.values():
        if CANONICAL_ATTRIBUTE not in obj.data.attributes:
            raise FormatError("proxy", f"proxy frame {obj.name!r} has no {CANONICAL_ATTRIBUTE!r} point attribute", IMPORT_HINT)
        if len(obj.get(EXPRESSION_PROPERTY, [])) != len(names):
            raise FormatError("proxy", f"proxy frame {obj.name!r} has an expression code of {len(obj.get(EXPRESSION_PROPERTY, []))} "
                              f"numbers, the sequence's layout {len(names)}", IMPORT_HINT)
    if with_ambient and len(with_ambient) != len(frames):
        raise FormatError("proxy", f"{len(with_ambient)} of the {len(frames)} frames of {name!r} have ambient coordinates",
                          "import one fitted sequence per collection: " + IMPORT_HINT)
    return ProxySequence(collection, dict(sorted(frames.items())), names, bool(with_ambient))


def proxy_head_frame(sequence: ProxySequence) -> HeadFrame:
    """The head box of the sequence's first frame: the cameras' reference for every bundle of this proxy."""
    first = next(iter(sequence.frames.values()))
    return rig_data.frame_around(world_vertices(first), first)


def _frames_to_render(sequence: ProxySequence, requested: list[int]) -> list[int]:
    frames = requested or list(sequence.frames)
    missing = [frame for frame in frames if frame not in sequence.frames]
    if missing:
        held = list(sequence.frames)
        raise FormatError("frames", f"the proxy {sequence.collection.name!r} has no frame {missing[0]} "
                          f"({len(missing)} of the {len(frames)} requested are missing; it holds frames {held[0]}-{held[-1]})",
                          "render frames the proxy was fitted on, or fit those frames too with 'avatar-foundry fit nphm'")
    return frames


def _require_shown_alone(sequence: ProxySequence, frame: int) -> None:
    """At ``frame`` exactly that frame's object renders (import keys each object's render visibility to its frame)."""
    shown = [index for index, obj in sequence.frames.items() if not obj.hide_render]
    if shown != [frame]:
        raise FormatError("proxy", f"at scene frame {frame} the proxy renders frame(s) {shown or 'none'} instead of frame {frame} alone",
                          "keep the render-visibility keyframes Import NPHM Proxy sets on each frame's object, or import the proxy again")


def render_proxy_bundle(request: "BundleRequest", source_scene: bpy.types.Scene) -> Iterator[tuple[float, str]]:
    """``condition_render.render_bundle`` for a ``BundleRequest`` naming a proxy: every (frame, view) into
    ``request.output_dir``, then conditions.json."""
    from .condition_render import NOTICE_PREFIX, follow_posed_head, refuse_empty_frame, target_objects, write_render

    if request.random_expressions:
        raise FormatError("random_expressions", "a neural-head proxy renders the frames it was fitted to, not random expressions",
                          "render its frames with the character as the target (random expressions 0)")
    if not request.views:
        raise FormatError("views", "no camera views to render", "set the number of views to at least 1")
    sequence = find_proxy(request.proxy)
    frames = _frames_to_render(sequence, list(request.frames))
    targets = target_objects(request.target)
    root = Path(request.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    total = len(frames) * len(request.views)
    renders: list[Render] = []
    settings = RenderSettings(request.width, request.height, request.target_samples)
    with ConditionScene(source_scene, list(sequence.frames.values()), settings, targets, sequence.coordinates) as scene:
        for notice in scene.notices:
            yield 0.0, NOTICE_PREFIX + notice
        heads, offset = follow_posed_head(proxy_head_frame(sequence), [world_vertices(sequence.frames[f]) for f in frames],
                                          sequence.frames[frames[0]])
        if offset is not None:
            yield 0.0, NOTICE_PREFIX + (f"the proxy's head leaves the box of its first frame (up to {offset:.2f} m from it): "
                                        "the cameras follow it in each frame")
        for frame_index, head in zip(frames, heads):
            scene.set_frame(frame_index)
            _require_shown_alone(sequence, frame_index)
            in_view = []
            for view in request.views:
                scene.place_camera(view.label, head)
                render, shows_head = write_render(root, view, frame_index, scene, (head, head), None, request.width, request.height)
                renders.append(render)
                in_view.append(shows_head)
                yield len(renders) / total, f"rendered {view.id} frame {frame_index} ({len(renders)}/{total})"
            refuse_empty_frame(frame_index, request.views, in_view)
    bundle = ConditionBundle(
        width=request.width, height=request.height, head_frame=heads[0], views=list(request.views),
        frames=[Frame(frame, sequence.code(frame)) for frame in frames], renders=renders,
        expression_names=sequence.expression_names,
        source={"tool": "avatar_foundry blender add-on", "version": addon_version, "blender": bpy.app.version_string,
                "proxy": sequence.collection.name, "proxy_kind": "nphm", "target": request.target, "seed": request.seed},
    )
    write_bundle_manifest(root, bundle)
    yield 1.0, f"wrote {len(renders)} renders to {root}"

