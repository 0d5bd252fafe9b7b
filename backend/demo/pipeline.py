"""``avatar-foundry demo``: the whole product end to end, on tiny random models, in a few minutes on a CPU.

1. Write tiny Stable Diffusion / ControlNet / LoRA models in their real on-disk formats into
   ``<out>/models`` (nothing is downloaded; the images they paint are noise, the code paths are real).
2. Start a Blender session (the ``bpy`` module) with its own user folder, install the add-on from
   its extension zip, and let ``artist_session`` press the add-on's buttons: it starts the backend
   server, registers the models folder and runs every job an artist runs (see that module).
3. Check what came back and print where it is: ``demo.blend`` with the imported avatars and the
   baked animation, ``avatar.glb``, the frames, ``summary.json``.

With real weights, the same steps make real avatars: see the README ("Use your own models").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InvalidInput

MARKER = ".avatar-foundry-demo"
RENDER_FILE_NOTICE = re.compile(r"\|\s+Saved: '")
"""Blender prints a line for every pass file a condition render writes; the demo leaves them out."""
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DemoSteps:
    """Sizes of every step: small enough for a 2-core CPU, large enough that each step really runs."""

    views: int = 6
    resolution: int = 32
    diffusion_steps: int = 4
    gan_images: int = 400
    mesh_resolution: int = 48
    texture_size: int = 64
    prior_steps: int = 48
    deferred_expressions: int = 4
    deferred_steps: int = 24
    animation_frames: int = 6
    default_renderer_resolution: int = 64
    """The embedded default renderer's animation is rendered at the size it was trained at."""
    nphm_expressions: int = 8
    nphm_steps: int = 60
    nphm_fit_steps: int = 40
    nphm_proxy_resolution: int = 32
    rendered_heads: int = 6
    rendered_views: int = 8
    rendered_gan_images: int = 1200
    """The 3D GAN the contact sheet shows learns from Cycles renders of varied demo heads (painting needs real
    Stable Diffusion weights, which the demo does not have)."""


def build_addon_zip() -> Path:
    """The extension zip of this checkout's add-on, built by ``build.py addon`` (so it is never stale)."""
    from .. import __version__

    build = REPOSITORY / "build.py"
    if not build.is_file():
        raise InvalidInput("this installation has no build.py to package the add-on", "pass --addon-zip PATH", field="addon_zip")
    subprocess.run([sys.executable, str(build), "addon"], cwd=REPOSITORY, check=True, stdout=subprocess.DEVNULL)
    return REPOSITORY / "dist" / f"avatar_foundry-{__version__}.zip"


def prepare_folder(out: Path) -> None:
    """An empty folder, or one an earlier demo made (emptied); never someone else's files."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InvalidInput(f"{out} is not empty and was not made by the demo", "pass --out with a new or empty folder", field="out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by avatar-foundry demo; deleted and rewritten by the next run\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_plan(out: Path, addon_zip: Path, steps: DemoSteps, seed: int, job_timeout_s: float) -> Path:
    plan = {
        "out": str(out), "addon_zip": str(addon_zip), "seed": seed, "steps": asdict(steps), "job_timeout_s": job_timeout_s,
        "backend_url": f"http://127.0.0.1:{free_port()}", "backend_python": sys.executable, "repository": str(REPOSITORY),
        "data_dir": str(out / "backend-data"), "models_dir": str(out / "models"), "results_dir": str(out / "results"),
    }
    path = out / "plan.json"
    path.write_text(json.dumps(plan, indent=2))
    return path


def run_blender_session(out: Path, plan: Path, timeout_s: float, blender_python: Path | None = None) -> None:
    """The artist's Blender session, in its own process and user folder (the user's Blender
    preferences and extensions are never touched), in ``blender_python``'s bpy (default: this Python's)."""
    home = out / "blender-home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1"}
    script = Path(__file__).with_name("artist_session.py")
    with subprocess.Popen([str(blender_python or sys.executable), str(script), str(plan)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        deadline = time.monotonic() + timeout_s
        for line in process.stdout:
            if not RENDER_FILE_NOTICE.search(line):
                print(line, end="", flush=True)
            if time.monotonic() > deadline:
                process.kill()
                raise InvalidInput(f"the demo's Blender session did not finish in {timeout_s:.0f} s", "rerun with a larger --timeout")
        code = process.wait()
    if code != 0:
        log = out / "backend-data" / "backend.log"
        raise InvalidInput(f"the demo's Blender session failed (exit code {code})",
                           f"see the output above{f' and the backend log {log}' if log.exists() else ''}")


def train_gan_on_rendered_heads(out: Path, steps: DemoSteps, seed: int, blender_python: Path | None = None) -> Path:
    """Cycles renders of varied demo heads (``training.synthetic_heads``, in the session's Blender Python, which
    has bpy) and the tiny 3D GAN trained on them: what the GAN learns when no real painting model is there.
    Returns the run folder (a generator checkpoint)."""
    from dataclasses import replace

    from training.eg3d.config import tiny_config
    from training.eg3d.trainer import train_eg3d
    from training.synthetic_heads import HeadSetSettings, head_set_dataset

    folder = out / "rendered-heads"
    settings = HeadSetSettings(heads=steps.rendered_heads, views_per_head=steps.rendered_views, seed=seed)
    print(f"[demo] rendering {settings.heads} varied demo heads x {settings.views_per_head} views (Cycles) for the 3D GAN", flush=True)
    env = {**os.environ, "HOME": str(out / "blender-home"), "PYTHONPATH": str(REPOSITORY)}
    command = [str(blender_python or sys.executable), "-m", "training.synthetic_heads", str(folder), "--heads", str(settings.heads),
               "--views", str(settings.views_per_head), "--seed", str(seed), "--render-only"]
    rendered = subprocess.run(command, cwd=REPOSITORY, env=env, capture_output=True, text=True)
    if rendered.returncode != 0:
        raise InvalidInput(f"rendering the demo heads failed: {rendered.stderr.strip().splitlines()[-1:]}",
                           "see that error; the demo needs a checkout of the repository")
    dataset = head_set_dataset(folder, settings)
    print(f"[demo] training the tiny 3D GAN on them ({steps.rendered_gan_images} images)", flush=True)
    run = folder / "gan"
    train_eg3d(dataset, run, replace(tiny_config(), total_images=steps.rendered_gan_images, tick_images=400, seed=seed))
    return run


def write_demo_contact_sheet(out: Path, summary: dict, seeds: int = 3) -> Path:
    """Conditions, avatars of the embedded default generator and of the GAN trained on rendered heads (several
    seeds and yaws), the default's textured mesh as imported into Blender, and the animation, in one PNG."""
    from ..default_models import default_generator
    from .contact_sheet import avatar_rows, condition_tiles, frame_tiles, write_contact_sheet

    return write_contact_sheet(out / "contact_sheet.png", [
        ("conditions (pose, depth, normal)", condition_tiles(out / "conditions")),
        *avatar_rows(default_generator(), seeds, "default generator"),
        (f"default generator\nseed {summary['seed']}: its mesh,\ntextured, in Blender", frame_tiles([summary["avatar_mesh_render"]])),
        *avatar_rows(Path(summary["rendered_heads_gan"]), seeds, "GAN on rendered heads"),
        ("animation (embedded\ndefault renderer)", frame_tiles(summary["default_renderer_frames"])),
        ("animation (renderer trained\nhere on tiny random SD)", frame_tiles(summary["animation_frames"])),
        ("animation (neural head)", frame_tiles(summary["nphm_animation_frames"])),
    ])


def run_demo(out: Path, addon_zip: Path, steps: DemoSteps = DemoSteps(), seed: int = 3,
             timeout_s: float = 1800.0, blender_python: Path | None = None) -> dict:
    from ..models.tiny import TinySpec, write_tiny_models

    if not addon_zip.is_file():
        raise InvalidInput(f"the add-on zip {addon_zip} does not exist", "build it with 'python build.py addon'", field="addon_zip")
    out = out.resolve()
    prepare_folder(out)
    started = time.monotonic()
    print(f"[demo] writing tiny random models into {out / 'models'}", flush=True)
    write_tiny_models(out / "models", TinySpec())
    print("[demo] the tiny random models paint noise: multi-view painting needs real Stable Diffusion weights "
          "(README, 'Use your own models'). Generate Avatar uses the embedded default generator, and the 3D GAN on the "
          "contact sheet learns from Cycles renders of varied demo heads.", flush=True)
    rendered_gan = train_gan_on_rendered_heads(out, steps, seed, blender_python)
    plan = write_plan(out, addon_zip.resolve(), steps, seed, job_timeout_s=timeout_s / 2)
    run_blender_session(out, plan, timeout_s, blender_python)
    summary = json.loads((out / "summary.json").read_text())
    summary.update(seed=seed, rendered_heads_gan=str(rendered_gan))
    summary["contact_sheet"] = str(write_demo_contact_sheet(out, summary))
    print(f"[demo] contact sheet of every stage: {summary['contact_sheet']}", flush=True)
    summary["seconds"] = round(time.monotonic() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
