"""Scene settings of the Avatar sidebar (one PropertyGroup per panel), and their job params."""

from __future__ import annotations

import bpy

from ..core.view_plan import OrbitSettings
from ..formats.cameras import DEFAULT_FOV_DEGREES, DEFAULT_RADIUS


def _is_armature(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


class ConditionSettings(bpy.types.PropertyGroup):
    rig: bpy.props.PointerProperty(name="Rig", type=bpy.types.Object, poll=_is_armature)
    views: bpy.props.IntProperty(name="Views", default=8, min=1, max=512)
    resolution: bpy.props.IntProperty(name="Resolution", default=512, min=16, max=4096)
    yaw_min: bpy.props.FloatProperty(name="Yaw min", default=-180.0, min=-180.0, max=180.0)
    yaw_max: bpy.props.FloatProperty(name="Yaw max", default=180.0, min=-180.0, max=180.0)
    pitch_min: bpy.props.FloatProperty(name="Pitch min", default=-30.0, min=-89.0, max=89.0)
    pitch_max: bpy.props.FloatProperty(name="Pitch max", default=30.0, min=-89.0, max=89.0)
    radius: bpy.props.FloatProperty(name="Radius", default=DEFAULT_RADIUS, min=0.5, description="In head-box units")
    fov: bpy.props.FloatProperty(name="FOV", default=DEFAULT_FOV_DEGREES, min=1.0, max=120.0)
    jitter: bpy.props.FloatProperty(name="Jitter", default=0.0, min=0.0, max=45.0)
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    use_frame_range: bpy.props.BoolProperty(name="Frame range", description="Render every scene frame (else the current one)")
    target: bpy.props.PointerProperty(name="Target", type=bpy.types.Object, description="Detailed character for a deferred dataset")
    random_expressions: bpy.props.IntProperty(name="Random expressions", default=16, min=1, max=10000)
    output_dir: bpy.props.StringProperty(name="Folder", subtype="DIR_PATH", default="//avatar_foundry/conditions")
    last_bundle: bpy.props.StringProperty(name="Last bundle", subtype="DIR_PATH")
    progress: bpy.props.FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    stage: bpy.props.StringProperty(name="Stage")

    def orbit(self) -> OrbitSettings:
        return OrbitSettings(views=self.views, yaw_min=self.yaw_min, yaw_max=self.yaw_max, pitch_min=self.pitch_min,
                             pitch_max=self.pitch_max, radius=self.radius, fov_degrees=self.fov, jitter_degrees=self.jitter, seed=self.seed)


class GenerateSettings(bpy.types.PropertyGroup):
    prompt: bpy.props.StringProperty(name="Style", default="a stylized 3D cartoon character head")
    negative_prompt: bpy.props.StringProperty(name="Negative", default="blurry, low quality")
    attributes: bpy.props.StringProperty(name="Attributes", description="Comma-separated attribute prompts for variety")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    steps: bpy.props.IntProperty(name="Steps", default=30, min=1, max=200)
    guidance: bpy.props.FloatProperty(name="Guidance", default=7.5, min=0.0, max=30.0)

    def params(self) -> dict:
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt,
                "attributes": [part.strip() for part in self.attributes.split(",") if part.strip()],
                "seed": self.seed, "steps": self.steps, "guidance": self.guidance}


class AvatarSettings(bpy.types.PropertyGroup):
    checkpoint: bpy.props.StringProperty(name="Checkpoint", description="job:<id> of a training job, or a model name")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    reference_job: bpy.props.StringProperty(name="Reference", description="job:<id> whose image guides the avatar (optional)")
    truncation: bpy.props.FloatProperty(name="Truncation", default=0.7, min=0.0, max=1.0)
    mesh_resolution: bpy.props.IntProperty(name="Mesh resolution", default=128, min=32, max=512)
    texture_size: bpy.props.IntProperty(name="Texture size", default=1024, min=64, max=8192)

    def params(self) -> dict:
        params = {"checkpoint": self.checkpoint, "seed": self.seed, "truncation": self.truncation,
                  "mesh_resolution": self.mesh_resolution, "texture_size": self.texture_size}
        if self.reference_job:
            params["reference"] = self.reference_job
        return params


class AnimateSettings(bpy.types.PropertyGroup):
    checkpoint: bpy.props.StringProperty(name="Checkpoint", description="job:<id> of a deferred-renderer training job")
    camera: bpy.props.PointerProperty(name="Camera", type=bpy.types.Object, poll=lambda _s, obj: obj.type == "CAMERA")
    frame_start: bpy.props.IntProperty(name="Start", default=1)
    frame_end: bpy.props.IntProperty(name="End", default=24)
    output_dir: bpy.props.StringProperty(name="Output", subtype="DIR_PATH", default="//avatar_foundry/animation")


class AvatarFoundryScene(bpy.types.PropertyGroup):
    conditions: bpy.props.PointerProperty(type=ConditionSettings)
    generate: bpy.props.PointerProperty(type=GenerateSettings)
    avatar: bpy.props.PointerProperty(type=AvatarSettings)
    animate: bpy.props.PointerProperty(type=AnimateSettings)


CLASSES = (ConditionSettings, GenerateSettings, AvatarSettings, AnimateSettings, AvatarFoundryScene)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.avatar_foundry = bpy.props.PointerProperty(type=AvatarFoundryScene)


def unregister() -> None:
    del bpy.types.Scene.avatar_foundry
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
