"""Job kind ``generate-avatar``: previews/*.png, avatar.glb and avatar.json from a trained generator."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .registry import JobContext, JobParams, Reference, Seed, job_kind

StyleNumber = Annotated[float, Field(ge=-1000, le=1000)]
Yaw = Annotated[float, Field(ge=-360, le=360)]


class GenerateAvatarParams(JobParams):
    checkpoint: Reference | None = Field(None, description="the generator: 'job:<id>' of a train-eg3d job or a model-store name "
                                         "(none: the embedded default generator, said in the job's notices)")
    seed: Seed = 0
    truncation_psi: float = Field(0.7, gt=0, le=1)
    w: (Annotated[list[StyleNumber], Field(max_length=4096)]
        | Annotated[list[Annotated[list[StyleNumber], Field(max_length=4096)]], Field(max_length=64)] | None) = Field(
        None, description="a style code instead of the seed ([w_dim] or [num_ws][w_dim])")
    preview_yaws: list[Yaw] = Field([0.0, 45.0, 90.0, 180.0, -90.0, -45.0], min_length=1, max_length=64)
    mesh_resolution: int = Field(256, ge=16, le=1024)
    mesh_level: float = Field(10.0, ge=-1e4, le=1e4)
    max_faces: int | None = Field(60000, ge=100, le=10_000_000)
    texture_size: int = Field(1024, ge=16, le=8192)
    export_mesh: bool = True
    style_prior: Reference | None = Field(None, description="image-guided: 'job:<id>' of a train-style-prior job; needs reference_image")
    reference_image: str = Field("reference.png", max_length=1024, description="image-guided: the reference image's path inside the uploaded zip")
    guidance_scale: float = Field(1.5, ge=0, le=20, description="image-guided: how closely to follow the image (0: ignore it)")
    prior_steps: int = Field(25, ge=1, le=1000, description="image-guided: DDIM steps of the style prior")


@job_kind("generate-avatar", GenerateAvatarParams, "generate an avatar: preview PNGs, textured avatar.glb and avatar.json",
          accepts_upload=True)
def generate_avatar_job(params: GenerateAvatarParams, context: JobContext) -> None:
    from backend.avatars import AvatarSettings, StyleRequest, generate_avatar
    from backend.default_models import DEFAULT_GENERATOR_NAME, DEFAULT_GENERATOR_NOTICE, default_generator
    from backend.geometry.mesh_extraction import MeshSettings
    from backend.geometry.texture_baking import TextureSettings
    from backend.models.eg3d.generator import load_generator
    from backend.models.style_prior.image_guidance import write_record
    from blender_addon.formats.notices import write_notices

    path = context.resolve(params.checkpoint) if params.checkpoint else default_generator()
    device = context.device or "cpu"
    stamp = (path / "model.safetensors").stat().st_mtime_ns if (path / "model.safetensors").exists() else 0
    generator = context.models.get(("eg3d-generator", str(path), stamp, str(device)), lambda: load_generator(path, device))
    guided = image_guided_style(params, context, generator)
    settings = AvatarSettings(
        style=StyleRequest(w=guided.w.tolist(), truncation_psi=1.0) if guided else StyleRequest(seed=params.seed, truncation_psi=params.truncation_psi, w=params.w),
        preview_yaws=tuple(params.preview_yaws),
        mesh=MeshSettings(grid_resolution=params.mesh_resolution, level=params.mesh_level, max_faces=params.max_faces),
        texture=TextureSettings(size=params.texture_size),
        export_mesh=params.export_mesh,
    )
    generate_avatar(generator, settings, context.output_dir, checkpoint=params.checkpoint or DEFAULT_GENERATOR_NAME, progress=context.progress,
                    image_guidance=guided.record if guided else None)
    if guided:
        write_record(context.output_dir, guided)
    if not params.checkpoint:
        write_notices(context.output_dir, [DEFAULT_GENERATOR_NOTICE])


def image_guided_style(params: GenerateAvatarParams, context: JobContext, generator):
    """The style prior's w for the uploaded reference image, or None without ``style_prior``."""
    from backend.models.style_prior.image_guidance import (ImageGuidance, background_of, load_prior_for_generator, predict_w,
                                                           uploaded_reference)

    if params.style_prior is None:
        return None
    image = uploaded_reference(context.inputs_dir, params.reference_image)
    path = context.resolve(params.style_prior)
    device = next(generator.parameters()).device
    stamp = (path / "model.safetensors").stat().st_mtime_ns if (path / "model.safetensors").exists() else 0
    prior = context.models.get(("style-prior", str(path), stamp, str(device)),
                               lambda: load_prior_for_generator(path, generator.config.w_dim, device, context.resolve))
    guidance = ImageGuidance(params.style_prior, params.reference_image, params.prior_steps, params.guidance_scale, params.seed)
    return predict_w(prior, guidance, image, background=background_of(generator))
