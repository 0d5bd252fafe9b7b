"""Geometry out of a radiance field: density grid, marching cubes mesh, UV atlas, baked texture, GLB."""
