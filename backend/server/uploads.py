"""Uploaded zips: safe extraction, and for condition bundles a cheap check that every pass file is sound.

Kinds that require an upload take a condition bundle; kinds that merely accept one (e.g. the
reference image of image-guided generate-avatar) take any safe zip, checked as a bundle only
when it holds conditions.json.

A zip is refused (INVALID_INPUT, field ``bundle``) when it is not a zip, names a path that leaves
the target folder (absolute, ``..``, drive letters), holds links or devices, or expands past the
size cap (zip bombs: declared sizes are checked first, real bytes are counted while extracting,
so a lying header does not help). The entry count and central directory size are read from the
zip's end record before the directory itself is parsed, so a zip listing millions of entries is
refused without holding them in memory; a directory larger than its declared entries can fill (an
end record claiming one entry before a directory of a million) is refused the same way, and a
directory holding another number of entries than declared is refused once parsed.
"""

from __future__ import annotations

import shutil
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from blender_addon.formats.condition_bundle import (MANIFEST_NAME, MAX_PATH_CHARACTERS, ConditionBundle,
                                                    check_relative_path, read_bundle)
from blender_addon.formats.errors import FormatError

from ..errors import InvalidInput

_CHUNK = 1 << 20
_MAX_ENTRIES = 100_000
_MAX_DIRECTORY_BYTES = 64 << 20
_MAX_RECORD_BYTES = 46 + 4 * MAX_PATH_CHARACTERS + 2048
"""The largest central directory record an accepted entry can have: the fixed part, a name of the
longest accepted path in UTF-8, and 2 KiB of extra field and comment (real zips use a few dozen bytes)."""
_END_RECORD = struct.Struct("<4s4H2LH")
_END_RECORD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
_MAX_COMMENT = 0xFFFF
_IMAGE_MODES = {"pose": ("RGB", "RGBA"), "target": ("RGB", "RGBA"), "mask": ("L", "1", "I;16", "I")}
_ARRAY_CHANNELS = {"depth": None, "normal": 3, "canonical": 3, "ambient": 2}
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def extract_zip(source: BinaryIO, target: Path, max_bytes: int) -> None:
    """Extract the zip ``source`` into the (new or empty) folder ``target``, refusing anything unsafe."""
    declared_entries = check_directory_size(source)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise InvalidInput(f"the upload is not a readable zip file ({error})", "zip the condition bundle folder again", field="bundle") from None
    with archive:
        members = archive.infolist()
        _check_declared_count(members, declared_entries)
        _check_members(members, max_bytes)
        budget = max_bytes
        for member in members:
            budget -= _extract_member(archive, member, target, budget)


def check_directory_size(source: BinaryIO) -> int | None:
    """Refuse a zip whose end record declares more than ``_MAX_ENTRIES`` entries, a central
    directory over ``_MAX_DIRECTORY_BYTES``, or a directory larger than its entries can fill,
    reading only the end of the file; returns the declared entry count (None without an end record)."""
    entries, directory_bytes = _declared_directory(source)
    if entries > _MAX_ENTRIES:
        raise InvalidInput(f"the zip lists {entries} entries (at most {_MAX_ENTRIES})",
                           "zip only the condition bundle folder", field="bundle")
    if directory_bytes > _MAX_DIRECTORY_BYTES:
        raise InvalidInput(f"the zip's central directory is {directory_bytes} bytes (at most {_MAX_DIRECTORY_BYTES})",
                           "zip only the condition bundle folder", field="bundle")
    if directory_bytes > max(entries, 1) * _MAX_RECORD_BYTES:
        raise InvalidInput(f"the zip's end record declares {entries} entries but a central directory of {directory_bytes} bytes, "
                           "more than that many entries can fill", "zip the condition bundle folder again with a standard zip tool",
                           field="bundle")
    return entries if directory_bytes else None


def _check_declared_count(members: list[zipfile.ZipInfo], declared_entries: int | None) -> None:
    if declared_entries is not None and len(members) != declared_entries:
        raise InvalidInput(f"the zip's central directory holds {len(members)} entries but its end record declares {declared_entries}",
                           "zip the condition bundle folder again with a standard zip tool", field="bundle")


def _declared_directory(source: BinaryIO) -> tuple[int, int]:
    """(entry count, central directory bytes) from the end record (and its Zip64 form); (0, 0)
    when there is none, leaving the refusal of a non-zip to ``zipfile``."""
    source.seek(0, 2)
    size = source.tell()
    tail_start = max(0, size - _END_RECORD.size - _MAX_COMMENT)
    source.seek(tail_start)
    tail = source.read()
    source.seek(0)
    position = tail.rfind(_END_RECORD_SIGNATURE)
    if position < 0 or position + _END_RECORD.size > len(tail):
        return 0, 0
    fields = _END_RECORD.unpack_from(tail, position)
    entries, directory_bytes = fields[4], fields[5]
    locator_position = position - _ZIP64_LOCATOR.size
    if locator_position >= 0 and tail[locator_position:locator_position + 4] == b"PK\x06\x07":
        zip64_offset = _ZIP64_LOCATOR.unpack_from(tail, locator_position)[2]
        source.seek(zip64_offset)
        record = source.read(_ZIP64_END_RECORD.size)
        source.seek(0)
        if len(record) == _ZIP64_END_RECORD.size and record[:4] == b"PK\x06\x06":
            zip64 = _ZIP64_END_RECORD.unpack(record)
            entries, directory_bytes = max(entries, zip64[7]), max(directory_bytes, zip64[8])
    return entries, directory_bytes


def _check_members(members: list[zipfile.ZipInfo], max_bytes: int) -> None:
    if len(members) > _MAX_ENTRIES:
        raise InvalidInput(f"the zip holds {len(members)} entries (at most {_MAX_ENTRIES})", field="bundle")
    declared = sum(member.file_size for member in members)
    if declared > max_bytes:
        raise InvalidInput(
            f"the zip expands to {declared} bytes, more than the server's cap of {max_bytes}",
            "render fewer views or a smaller resolution, or start the server with a larger --max-extracted-mb",
            field="bundle",
        )
    for member in members:
        name = member.filename.rstrip("/") if member.is_dir() else member.filename
        try:
            check_relative_path(name, "bundle")
        except FormatError as error:
            raise InvalidInput(f"the zip entry {member.filename[:120]!r} is refused: {error.message}",
                               "zip the bundle folder itself; entries must be relative paths without '..', "
                               "with short names", field="bundle") from None
        file_type = stat.S_IFMT(member.external_attr >> 16)
        if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise InvalidInput(f"the zip entry {member.filename!r} is a link or special file", "zip plain files only", field="bundle")


def _extract_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Extract one entry, counting real bytes against ``budget``; returns the bytes written."""
    destination = target.joinpath(*member.filename.rstrip("/").split("/"))
    written = 0
    try:
        if member.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            return 0
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as reader, open(destination, "wb") as writer:
            while chunk := reader.read(_CHUNK):
                written += len(chunk)
                if written > budget:
                    raise InvalidInput("the zip expands past the server's size cap (its headers understate the sizes)",
                                       "zip the bundle again with a standard zip tool", field="bundle")
                writer.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise InvalidInput(f"the zip entry {member.filename!r} is corrupt ({error})", "zip the condition bundle folder again", field="bundle") from None
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise InvalidInput(f"the zip entry {member.filename!r} clashes with another entry (a file and a folder of one name)",
                           "zip the condition bundle folder again", field="bundle") from None
    return written


def find_bundle_root(extracted: Path) -> Path | None:
    """The folder holding conditions.json: the extraction root or its only sub-folder (a zipped
    folder); None when the upload holds no condition bundle."""
    if (extracted / MANIFEST_NAME).is_file():
        return extracted
    children = [child for child in extracted.iterdir() if not child.name.startswith(("__MACOSX", "."))]
    if len(children) == 1 and (children[0] / MANIFEST_NAME).is_file():
        return children[0]
    return None


def move_into(source: Path, target: Path) -> None:
    """Make ``target`` hold exactly what ``source`` holds (used to flatten a zipped top folder)."""
    if source == target:
        return
    staging = target.with_name(target.name + ".staging")
    source.rename(staging)
    shutil.rmtree(target)
    staging.rename(target)


def load_checked_bundle(root: Path) -> ConditionBundle:
    """Read conditions.json and check each pass file's header: format, size and channels.

    Cheap (headers only), so a corrupt upload is refused when it is submitted, naming the field.
    """
    bundle = read_bundle(root, check_files=True)
    for index, render in enumerate(bundle.renders):
        for name, relative in render.passes.items():
            field = f"renders[{index}].passes.{name}"
            if relative.endswith(".png"):
                _check_image_header(root / relative, field, name, bundle.width, bundle.height)
            else:
                _check_array_header(root / relative, field, name, bundle.width, bundle.height)
    return bundle


def _check_image_header(path: Path, field: str, pass_name: str, width: int, height: int) -> None:
    try:
        with Image.open(path) as image:
            image.verify()
            size, mode = image.size, image.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise FormatError(field, f"{path.name} is not a readable PNG ({error})", "render the conditions again") from None
    if size != (width, height):
        raise FormatError(field, f"{path.name} is {size[0]}x{size[1]} but the bundle is {width}x{height}")
    if mode not in _IMAGE_MODES[pass_name]:
        raise FormatError(field, f"{path.name} has colour mode {mode}; a {pass_name} pass needs {' or '.join(_IMAGE_MODES[pass_name])}")


def _check_array_header(path: Path, field: str, pass_name: str, width: int, height: int) -> None:
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version not in _NPY_HEADER_READERS:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = _NPY_HEADER_READERS[version](handle)
    except (ValueError, OSError, SyntaxError) as error:
        raise FormatError(field, f"{path.name} is not a readable .npy array ({error})", "render the conditions again") from None
    channels = _ARRAY_CHANNELS[pass_name]
    expected = (height, width) if channels is None else (height, width, channels)
    if tuple(shape) != expected:
        raise FormatError(field, f"{path.name} has shape {tuple(shape)}, expected {expected}")
    if dtype.kind != "f":
        raise FormatError(field, f"{path.name} holds {dtype}, expected float32")


def unpack_upload(source: BinaryIO, inputs_dir: Path, max_bytes: int, bundle_required: bool) -> ConditionBundle | None:
    """Extract an uploaded zip into ``inputs_dir``. A condition bundle in it is moved to the top of
    ``inputs_dir`` and checked; without one the upload is refused when ``bundle_required``, else
    kept as plain files (e.g. a reference image) and None is returned."""
    inputs_dir.mkdir(parents=True)
    extract_zip(source, inputs_dir, max_bytes)
    root = find_bundle_root(inputs_dir)
    if root is None:
        if bundle_required:
            raise FormatError(f"bundle/{MANIFEST_NAME}", "the zip holds no conditions.json",
                              "zip the folder the add-on wrote (the one holding conditions.json)")
        return None
    move_into(root, inputs_dir)
    return load_checked_bundle(inputs_dir)
