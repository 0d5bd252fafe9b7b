"""A neural-head proxy animation: one mesh per frame (topology may change between frames), each vertex with
its canonical coordinates and ambient coordinates, written by ``fit nphm --proxy-resolution`` and read by the
add-on (standard library only).

Folder::

    proxy.json        {"version": 1, "kind": "nphm", "ambient_dims": 2,
                       "expression_names": ["nphm:0", ...],          the NPHM expression code's layout
                       "frames": [{"name": "frame_0001", "file": "frame_0001.ply", "expression": [...]}]}
    <frame>.ply       binary little-endian PLY: x y z (the scene's units and place, like the fitted rig),
                      canonical_x/y/z (the neutral head's position, head space [-0.5, 0.5] per axis of the
                      model box), ambient_<k>; faces as vertex_indices lists

Any PLY reader sees an ordinary mesh; the extra vertex properties carry the coordinates.
"""

from __future__ import annotations

import struct
from array import array
from pathlib import Path
from typing import Any

from .errors import FormatError
from .files import atomic_write, read_json_file

PROXY_VERSION = 1
MANIFEST_NAME = "proxy.json"
CANONICAL_NAMES = ("canonical_x", "canonical_y", "canonical_z")


def vertex_property_names(ambient_dims: int) -> list[str]:
    return ["x", "y", "z", *CANONICAL_NAMES, *(f"ambient_{k}" for k in range(ambient_dims))]


def ply_header(property_names: list[str], vertex_count: int, face_count: int) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0", "comment avatar-foundry", f"element vertex {vertex_count}"]
    lines += [f"property float {name}" for name in property_names]
    lines += [f"element face {face_count}", "property list uchar int vertex_indices", "end_header"]
    return ("\n".join(lines) + "\n").encode("ascii")


def write_ply(path: Path, property_names: list[str], vertex_floats: bytes, face_indices: bytes, vertex_count: int, face_count: int) -> Path:
    """A triangle mesh as binary PLY. ``vertex_floats``: little-endian float32 rows of ``property_names`` (x, y, z
    first); ``face_indices``: little-endian int32 triples."""
    triangles = array("i")
    triangles.frombytes(face_indices)
    body = bytearray()
    for face in range(face_count):
        body += struct.pack("<B3i", 3, *triangles[3 * face: 3 * face + 3])
    data = ply_header(property_names, vertex_count, face_count) + vertex_floats + bytes(body)
    return atomic_write(path, lambda temp: temp.write_bytes(data))


def write_proxy_ply(path: Path, vertex_floats: bytes, face_indices: bytes, vertex_count: int, face_count: int, ambient_dims: int) -> Path:
    """One proxy frame: rows of ``vertex_property_names(ambient_dims)``."""
    return write_ply(path, vertex_property_names(ambient_dims), vertex_floats, face_indices, vertex_count, face_count)


def read_proxy_ply(path: Path) -> dict[str, Any]:
    """{"properties": names, "vertices": list of rows, "faces": list of triples} of a proxy PLY."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise FormatError(str(path), "is not a PLY file", "write proxies with 'avatar-foundry fit nphm --proxy-resolution'")
    header = data[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise FormatError(str(path), "is not a binary little-endian PLY")
    names = [line.split()[-1] for line in header if line.startswith("property float")]
    vertex_count = next(int(line.split()[-1]) for line in header if line.startswith("element vertex"))
    face_count = next(int(line.split()[-1]) for line in header if line.startswith("element face"))
    offset = end + len(b"end_header\n")
    floats = array("f")
    floats.frombytes(data[offset: offset + 4 * len(names) * vertex_count])
    width = len(names)
    vertices = [list(floats[i * width:(i + 1) * width]) for i in range(vertex_count)]
    offset += 4 * width * vertex_count
    faces = []
    for _ in range(face_count):
        count = data[offset]
        faces.append(list(struct.unpack_from(f"<{count}i", data, offset + 1)))
        offset += 1 + 4 * count
    return {"properties": names, "vertices": vertices, "faces": faces}


def read_proxy_manifest(folder: Path) -> dict[str, Any]:
    document = read_json_file(Path(folder) / MANIFEST_NAME, "write the proxy sequence with 'avatar-foundry fit nphm --proxy-resolution N'")
    if not isinstance(document, dict) or document.get("version") != PROXY_VERSION or not isinstance(document.get("frames"), list):
        raise FormatError(MANIFEST_NAME, f"is not a version {PROXY_VERSION} proxy manifest")
    return document
