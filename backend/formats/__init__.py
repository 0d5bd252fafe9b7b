"""Formats internal to the backend: model configs and checkpoints (the multi-view dataset format
lives with its reader in ``training.datasets``; formats shared with the add-on in
``blender_addon.formats``)."""
