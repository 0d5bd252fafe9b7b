"""Avatar Foundry, the Blender add-on: render conditions from rigs, run backend jobs, import results.

This package is also imported by the backend (for ``formats``) where bpy may be absent, so
nothing here imports bpy at import time: ``register``/``unregister`` load the Blender side lazily.
"""

from __future__ import annotations

__version__ = "0.1.0"


def register() -> None:
    from .blender import registration

    registration.register()


def unregister() -> None:
    from .blender import registration

    registration.unregister()
