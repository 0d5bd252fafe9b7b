"""The Blender side of the add-on: thin bpy layers over ``..core`` (scene building, rendering,
importing, operators, panels). Import only where bpy exists."""
