"""Scene settings of the Avatar sidebar (one PropertyGroup per step), and the job params they make.

Each ``params()`` returns exactly the fields of its backend job kind (``backend/jobs/<kind>.py``);
the test suite checks them against those schemas, so a renamed field cannot slip through.
"""

from __future__ import annotations

import bpy

from ..core.job_requests import read_attribute_file, require_reference
from ..core.view_plan import OrbitSettings
from ..formats.cameras import DEFAULT_FOV_DEGREES, DEFAULT_RADIUS
from ..formats.errors import FormatError
from .blender_versions import blend_relative_path_options
from .proxy_import import EXPRESSION_NAMES_PROPERTY

CONTROL_KINDS = ("pose", "depth", "normal")
GAN_PRESETS = [("tiny", "Tiny", "Seconds on a CPU: a smoke test"), ("small", "Small", "A quick look on one GPU"),
               ("full", "Full", "EG3D's size: 512² output, hours on GPUs")]


def _can_be_rig(_self, obj: bpy.types.Object) -> bool:
    """Armatures, and meshes with shape keys (a head that is only a mesh)."""
    return obj.type == "ARMATURE" or (obj.type == "MESH" and obj.data.shape_keys is not None)


def _is_camera(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "CAMERA"


def _is_proxy_sequence(_self, collection: bpy.types.Collection) -> bool:
    """Collections Import NPHM Proxy made (they carry the sequence's expression layout)."""
    return EXPRESSION_NAMES_PROPERTY in collection


PROXY_KINDS = [("RIG", "Rig", "The rig's own meshes: canonical pass from their rest pose, the rig's expression code"),
               ("NPHM", "Neural head", "An imported NPHM proxy sequence (Import NPHM Proxy): canonical and ambient passes, "
                                       "NPHM expression codes, one fitted frame per scene frame")]


def _model_names(role: str):
    """A ``search`` callback offering the backend's registered models of ``role`` (typing stays free)."""
    def search(_self, _context, text: str) -> list[str]:
        from .session import session

        names = [model["name"] for model in session().models if model.get("role") == role]
        return [name for name in names if text.lower() in name.lower()]
    return search


class ConditionSettings(bpy.types.PropertyGroup):
    rig: bpy.props.PointerProperty(name="Rig", type=bpy.types.Object, poll=_can_be_rig)
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
    output_dir: bpy.props.StringProperty(name="Folder", subtype="DIR_PATH", default="//avatar_foundry/conditions",
                                         options=blend_relative_path_options())
    last_bundle: bpy.props.StringProperty(name="Last bundle", subtype="DIR_PATH", options=blend_relative_path_options())
    progress: bpy.props.FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    stage: bpy.props.StringProperty(name="Stage")

    def orbit(self) -> OrbitSettings:
        return OrbitSettings(views=self.views, yaw_min=self.yaw_min, yaw_max=self.yaw_max, pitch_min=self.pitch_min,
                             pitch_max=self.pitch_max, radius=self.radius, fov_degrees=self.fov, jitter_degrees=self.jitter, seed=self.seed)


class GenerateSettings(bpy.types.PropertyGroup):
    """The ``multiview`` job: paint stylized images of the condition bundle."""

    style: bpy.props.StringProperty(name="Style", default="a stylized 3D cartoon character head, Pixar style")
    negative_prompt: bpy.props.StringProperty(name="Negative", default="blurry, low quality, deformed, text, watermark")
    base: bpy.props.StringProperty(name="Base model", search=_model_names("base"),
                                   description="Registered Stable Diffusion model (empty: the only one registered)")
    use_pose: bpy.props.BoolProperty(name="Pose", default=True)
    use_depth: bpy.props.BoolProperty(name="Depth", default=True)
    use_normal: bpy.props.BoolProperty(name="Normal", default=False)
    pose_model: bpy.props.StringProperty(name="Pose ControlNet", search=_model_names("controlnet-pose"))
    depth_model: bpy.props.StringProperty(name="Depth ControlNet", search=_model_names("controlnet-depth"))
    normal_model: bpy.props.StringProperty(name="Normal ControlNet", search=_model_names("controlnet-normal"))
    pose_weight: bpy.props.FloatProperty(name="Weight", default=1.0, min=0.0, max=2.0)
    depth_weight: bpy.props.FloatProperty(name="Weight", default=1.0, min=0.0, max=2.0)
    normal_weight: bpy.props.FloatProperty(name="Weight", default=1.0, min=0.0, max=2.0)
    attributes_file: bpy.props.StringProperty(name="Attributes", subtype="FILE_PATH", options=blend_relative_path_options(),
                                              description="JSON {category: [options]} replacing the ~20 built-in categories (empty: built-in)")
    attributes_per_image: bpy.props.IntProperty(name="Attributes per image", default=5, min=0, max=50)
    per_view: bpy.props.IntProperty(name="Images per view", default=1, min=1, max=1000)
    candidates: bpy.props.IntProperty(name="Candidates", default=1, min=1, max=16,
                                      description="Paint this many per image and keep the one that follows the pose best")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    steps: bpy.props.IntProperty(name="Steps", default=20, min=1, max=200)
    guidance: bpy.props.FloatProperty(name="Guidance", default=7.5, min=0.0, max=30.0)
    resolution: bpy.props.IntProperty(name="Resolution", default=0, min=0, max=2048, step=8,
                                      description="Image size (0: the base model's own, 512 for SD 1.5)")

    def params(self) -> dict:
        used = [kind for kind in CONTROL_KINDS if getattr(self, f"use_{kind}")]
        params = {
            "style": self.style, "negative_prompt": self.negative_prompt, "base": self.base.strip(),
            "controlnets": {kind: getattr(self, f"{kind}_model").strip() for kind in used},
            "control_weights": {kind: getattr(self, f"{kind}_weight") for kind in used},
            "attributes_per_image": self.attributes_per_image, "per_view": self.per_view, "candidates": self.candidates,
            "seed": self.seed, "steps": self.steps, "guidance": self.guidance, "resolution": self.resolution,
        }
        if self.attributes_file.strip():
            params["attributes"] = read_attribute_file(bpy.path.abspath(self.attributes_file))
        return params


class TrainSettings(bpy.types.PropertyGroup):
    """The ``train-eg3d`` job: the 3D GAN trained on a multiview job's images."""

    dataset: bpy.props.StringProperty(name="Dataset", description="job:<id> of a multiview job (filled in when one finishes)")
    config: bpy.props.EnumProperty(name="Preset", items=GAN_PRESETS, default="small")
    total_images: bpy.props.IntProperty(name="Images to train", default=0, min=0,
                                        description="Train until the discriminator has seen this many images (0: the preset's)")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)

    def params(self) -> dict:
        params = {"dataset": require_reference(self.dataset, "dataset", "Generate Multi-view Images"), "config": self.config,
                  "seed": self.seed}
        if self.total_images:
            params["total_images"] = self.total_images
        return params


class AvatarSettings(bpy.types.PropertyGroup):
    """The ``generate-avatar`` job (seeded or image-guided) and the ``train-style-prior`` job."""

    checkpoint: bpy.props.StringProperty(name="Generator", description="job:<id> of a train-eg3d job, or a model name "
                                         "(empty: the backend's embedded default generator)")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    truncation: bpy.props.FloatProperty(name="Truncation", default=0.7, min=0.05, max=1.0,
                                        description="Pull the style towards the average avatar (1: none)")
    mesh_resolution: bpy.props.IntProperty(name="Mesh resolution", default=256, min=16, max=1024)
    texture_size: bpy.props.IntProperty(name="Texture size", default=1024, min=16, max=8192)
    reference_image: bpy.props.StringProperty(name="Reference image", subtype="FILE_PATH", options=blend_relative_path_options(),
                                              description="An image the avatar should resemble (needs a style prior)")
    style_prior: bpy.props.StringProperty(name="Style prior", description="job:<id> of a train-style-prior job")
    guidance_scale: bpy.props.FloatProperty(name="Image guidance", default=1.5, min=0.0, max=20.0,
                                            description="How closely to follow the reference image (0: ignore it)")
    prior_config: bpy.props.EnumProperty(name="Prior preset", items=GAN_PRESETS, default="small")
    prior_steps: bpy.props.IntProperty(name="Prior training steps", default=20000, min=1)

    def image_guided(self) -> bool:
        return bool(self.reference_image.strip())

    def params(self, reference_name: str | None = None) -> dict:
        params = {"seed": self.seed, "truncation_psi": self.truncation, "mesh_resolution": self.mesh_resolution,
                  "texture_size": self.texture_size}
        if self.checkpoint.strip():  # empty: the backend's embedded default generator
            params["checkpoint"] = self.checkpoint.strip()
        if reference_name is not None:
            params.update(style_prior=require_reference(self.style_prior, "style_prior", "Train Style Prior"),
                          reference_image=reference_name, guidance_scale=self.guidance_scale)
        return params

    def style_prior_params(self) -> dict:
        return {"generator": require_reference(self.checkpoint, "checkpoint", "Train 3D GAN"), "config": self.prior_config,
                "steps": self.prior_steps, "seed": self.seed}


class DeferredSettings(bpy.types.PropertyGroup):
    """The deferred dataset (proxy rig passes + the detailed character) and the ``train-deferred`` job."""

    target: bpy.props.PointerProperty(name="Target", type=bpy.types.Object, description="Detailed character rendered as the target")
    random_expressions: bpy.props.IntProperty(name="Random expressions", default=16, min=1, max=10000)
    output_dir: bpy.props.StringProperty(name="Folder", subtype="DIR_PATH", default="//avatar_foundry/deferred_dataset",
                                         options=blend_relative_path_options())
    last_bundle: bpy.props.StringProperty(name="Last dataset", subtype="DIR_PATH", options=blend_relative_path_options())
    prior: bpy.props.EnumProperty(name="Prior", items=[
        ("latent-diffusion", "Stable Diffusion", "A ControlNet on a frozen Stable Diffusion base model (DiffusionAvatars)"),
        ("none", "From scratch", "A small UNet trained in pixel space, no base model: small images (up to 128 px), "
                                 "the paper's 'w/o LDM prior'")])
    base: bpy.props.StringProperty(name="Base model", search=_model_names("base"),
                                   description="Frozen Stable Diffusion model (empty: the only one registered)")
    mode: bpy.props.EnumProperty(name="Mode", items=[("diffusion", "Diffusion", "DiffusionAvatars' renderer"),
                                                     ("direct", "Direct", "One forward pass, no diffusion (the paper's baseline)")])
    steps: bpy.props.IntProperty(name="Training steps", default=100_000, min=1)
    crop: bpy.props.IntProperty(name="Crop", default=0, min=0, max=2048, description="Random crop size (0: whole images)")
    batch_size: bpy.props.IntProperty(name="Batch size", default=4, min=1, max=256)

    def params(self, image_size: int) -> dict:
        base = self.base.strip() if self.prior == "latent-diffusion" else ""  # from scratch there is no base model
        return {"prior": self.prior, "base": base, "mode": self.mode, "steps": self.steps, "resolution": self.crop or image_size,
                "batch_size": self.batch_size}


class AnimateSettings(bpy.types.PropertyGroup):
    """The ``animate`` job: per-frame conditions from one camera, baked by the deferred renderer."""

    checkpoint: bpy.props.StringProperty(name="Renderer", description="job:<id> of a train-deferred job (empty: the backend's "
                                         "embedded default renderer, which knows the demo head only)")
    camera: bpy.props.PointerProperty(name="Camera", type=bpy.types.Object, poll=_is_camera)
    frame_start: bpy.props.IntProperty(name="Start", default=1)
    frame_end: bpy.props.IntProperty(name="End", default=24)
    output_dir: bpy.props.StringProperty(name="Output", subtype="DIR_PATH", default="//avatar_foundry/animation",
                                         options=blend_relative_path_options())
    proxy: bpy.props.EnumProperty(name="Proxy", items=PROXY_KINDS,
                                  description="What the deferred dataset and the animation render their conditions from")
    nphm_proxy: bpy.props.PointerProperty(name="Neural head", type=bpy.types.Collection, poll=_is_proxy_sequence,
                                          description="The imported NPHM proxy sequence (Import NPHM Proxy fills it in)")
    nphm_model: bpy.props.StringProperty(name="Neural head model", description="job:<id> of a train-nphm job, or a model name of role nphm")
    nphm_config: bpy.props.EnumProperty(name="Preset", items=[("full", "Full", "NPHM's published sizes"),
                                                              ("tiny", "Tiny", "Seconds on a CPU: a smoke test")])
    nphm_expressions: bpy.props.IntProperty(name="Expressions", default=200, min=1, max=10000,
                                            description="Random rig expressions the neural head trains on (with the neutral)")
    nphm_steps: bpy.props.IntProperty(name="Training steps", default=0, min=0, max=10_000_000,
                                      description="Steps of each training stage (0: the preset's)")
    fit_identity_steps: bpy.props.IntProperty(name="Identity steps", default=400, min=1, max=1_000_000)
    fit_frame_steps: bpy.props.IntProperty(name="Steps per frame", default=100, min=1, max=1_000_000)
    proxy_resolution: bpy.props.IntProperty(name="Proxy resolution", default=128, min=16, max=1024,
                                            description="Marching-cubes grid of the proxy meshes")

    def params(self) -> dict:
        if self.checkpoint.strip():
            return {"checkpoint": self.checkpoint.strip()}
        if self.proxy != "RIG":
            require_reference(self.checkpoint, "checkpoint", "Train Renderer on the neural head's passes")
        return {}  # the backend's embedded default renderer

    def train_nphm_params(self) -> dict:
        steps = self.nphm_steps or None
        return {"config": self.nphm_config, "identity_steps": steps, "expression_steps": steps}

    def fit_nphm_params(self) -> dict:
        return {"model": require_reference(self.nphm_model, "nphm_model", "Train Neural Head"), "identity_steps": self.fit_identity_steps,
                "frame_steps": self.fit_frame_steps, "proxy_resolution": self.proxy_resolution}

    def proxy_name(self) -> str:
        """The neural-head proxy's collection to render, or "" when the proxy is the rig."""
        if self.proxy == "RIG":
            return ""
        if self.nphm_proxy is None:
            raise FormatError("nphm_proxy", "Proxy is Neural head but no NPHM proxy is chosen",
                              "press Import NPHM Proxy (the proxy/ folder 'fit nphm --proxy-resolution' wrote), or set Proxy to Rig")
        return self.nphm_proxy.name


class AvatarFoundryScene(bpy.types.PropertyGroup):
    conditions: bpy.props.PointerProperty(type=ConditionSettings)
    generate: bpy.props.PointerProperty(type=GenerateSettings)
    train: bpy.props.PointerProperty(type=TrainSettings)
    avatar: bpy.props.PointerProperty(type=AvatarSettings)
    deferred: bpy.props.PointerProperty(type=DeferredSettings)
    animate: bpy.props.PointerProperty(type=AnimateSettings)


CLASSES = (ConditionSettings, GenerateSettings, TrainSettings, AvatarSettings, DeferredSettings, AnimateSettings, AvatarFoundryScene)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.avatar_foundry = bpy.props.PointerProperty(type=AvatarFoundryScene)


def unregister() -> None:
    del bpy.types.Scene.avatar_foundry
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
