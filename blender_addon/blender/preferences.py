"""Add-on preferences: where the backend is, how to reach it, and whether to start it."""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

from ..formats.protocol import DEFAULT_HOST, DEFAULT_PORT
from .blender_versions import blend_relative_path_options

ADDON_PACKAGE = __package__.rsplit(".", 1)[0]


def default_data_dir() -> str:
    return str(Path.home() / ".local" / "share" / "avatar-foundry")


class AvatarFoundryPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    backend_url: bpy.props.StringProperty(name="Backend URL", default=f"http://{DEFAULT_HOST}:{DEFAULT_PORT}")
    token: bpy.props.StringProperty(name="Token", subtype="PASSWORD", description="Leave empty to read it from the data folder")
    data_dir: bpy.props.StringProperty(name="Backend data folder", subtype="DIR_PATH", default=default_data_dir(),
                                       description="The backend's --data-dir: token, jobs and models")
    auto_start: bpy.props.BoolProperty(name="Start backend automatically", default=False)
    backend_python: bpy.props.StringProperty(name="Backend Python", subtype="FILE_PATH", default=sys.executable,
                                             description="Python with torch and the avatar-foundry package installed")
    backend_source: bpy.props.StringProperty(name="Backend source folder", subtype="DIR_PATH",
                                             description="Repository folder, when the backend is not installed into that Python")
    models_dir: bpy.props.StringProperty(name="Models folder", subtype="DIR_PATH",
                                         description="Local model folders (diffusers or .safetensors) to register with the backend")
    output_dir: bpy.props.StringProperty(name="Default output folder", subtype="DIR_PATH", default="//avatar_foundry/",
                                         options=blend_relative_path_options())

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        for name in ("backend_url", "token", "data_dir", "auto_start", "backend_python", "backend_source", "models_dir", "output_dir"):
            layout.prop(self, name)


def preferences(context: bpy.types.Context | None = None) -> AvatarFoundryPreferences:
    return (context or bpy.context).preferences.addons[ADDON_PACKAGE].preferences
