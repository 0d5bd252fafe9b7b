"""Plain-Python cores of the add-on (no bpy): geometry of the demo head, view planning, landmark
projection and skeleton drawing, expression-code extraction order, the HTTP client, job polling
and the backend process. The Blender side (``..blender``) only gathers scene data and calls these.
Standard library plus numpy (which Blender bundles)."""
