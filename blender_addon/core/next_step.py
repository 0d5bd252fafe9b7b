"""The one thing a first-time artist should do next, from what the session has so far (plain
Python: the Backend panel draws it at the top of the sidebar)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Progress:
    """What exists now; each flag is one step of the README's path."""

    connected: bool = False
    has_rig: bool = False
    conditions_rendered: bool = False
    has_dataset: bool = False
    """Train 3D GAN's dataset is filled in (a multiview job finished)."""
    has_generator: bool = False
    """Generate Avatar's generator is filled in (a train-eg3d job finished)."""
    running: list[str] = field(default_factory=list)
    """Kinds of the jobs that are queued or running."""


def next_step(progress: Progress) -> str:
    """A short imperative naming the button and where it is."""
    if not progress.connected:
        return "Start the backend (Start, above)"
    if progress.running:
        return f"Wait for {progress.running[0]} (see Jobs)"
    if not progress.has_rig:
        return "Add Demo Head or pick a Rig (Conditions)"
    if not progress.conditions_rendered:
        return "Render Conditions (Conditions)"
    if not progress.has_dataset:
        return "Generate Multi-view Images (Generate)"
    if not progress.has_generator:
        return "Train 3D GAN (Generate)"
    return "Generate Avatar (Avatars)"
