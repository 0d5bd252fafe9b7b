"""Formats Avatar Foundry's add-on exchanges with its backend.

Standard library only (no bpy, no numpy), so that Blender's Python and the backend's Python import
the very same modules: the camera convention, the condition bundle, expression-code layouts, the
HTTP protocol constants and atomic file writes each live here exactly once.
"""
