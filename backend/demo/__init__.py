"""The demo: the whole product end to end on tiny local models (``avatar-foundry demo``,
``python build.py demo``). ``pipeline`` prepares and checks; ``artist_session`` is the Blender half."""
