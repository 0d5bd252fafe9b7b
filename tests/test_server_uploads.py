"""Uploaded bundle zips: unsafe archives are refused before anything lands outside the job folder."""

from __future__ import annotations

import io
import json
import stat
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from backend.errors import InvalidInput
from backend.server.uploads import extract_zip, unpack_upload
from blender_addon.formats.errors import FormatError
from tests.fixtures.server import write_condition_bundle, zip_folder

MiB = 1 << 20


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/outside.txt", "a/../../outside.txt", "C:/outside.txt", "a\\..\\..\\outside.txt"])
def test_entries_leaving_the_target_are_refused(tmp_path, name):
    target = tmp_path / "inputs"
    target.mkdir()
    with pytest.raises(InvalidInput) as refused:
        extract_zip(_zip({"ok.txt": b"fine", name: b"bad"}), target, MiB)
    assert refused.value.field == "bundle"
    assert not list(tmp_path.rglob("outside.txt"))
    assert not list(target.iterdir())


def test_symbolic_links_in_the_zip_are_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("conditions.json")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    buffer.seek(0)
    with pytest.raises(InvalidInput, match="link"):
        extract_zip(buffer, tmp_path, MiB)


def test_a_zip_bomb_is_refused_from_its_declared_size_before_extracting(tmp_path):
    bomb = _zip({"zeros.npy": bytes(8 * MiB)})
    assert len(bomb.getvalue()) < 64 * 1024
    with pytest.raises(InvalidInput, match="expands"):
        extract_zip(bomb, tmp_path, 2 * MiB)
    assert not list(tmp_path.iterdir())


def test_a_file_and_a_folder_of_one_name_are_refused_as_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="clashes"):
        extract_zip(_zip({"renders": b"a file", "renders/v00/pose.png": b"x"}), tmp_path, MiB)


def test_bytes_that_are_not_a_zip_are_refused(tmp_path):
    with pytest.raises(InvalidInput, match="not a readable zip"):
        extract_zip(io.BytesIO(b"definitely not a zip"), tmp_path, MiB)


def test_a_bundle_zipped_with_its_top_folder_is_unpacked_flat(tmp_path):
    root = write_condition_bundle(tmp_path / "source" / "head-bundle", views=1, size=16)
    inputs = tmp_path / "job" / "inputs"
    bundle = unpack_upload(io.BytesIO(zip_folder(root.parent)), inputs, 16 * MiB, bundle_required=True)
    assert (inputs / "conditions.json").is_file()
    assert len(bundle.renders) == 1 and (inputs / bundle.renders[0].passes["depth"]).is_file()


def test_a_zip_without_conditions_json_is_refused_where_a_bundle_is_required(tmp_path):
    with pytest.raises(FormatError) as refused:
        unpack_upload(_zip({"readme.txt": b"hello"}), tmp_path / "inputs", MiB, bundle_required=True)
    assert refused.value.field == "bundle/conditions.json"


def test_a_zip_of_plain_files_is_kept_as_is_where_no_bundle_is_required(tmp_path):
    """e.g. the reference image of image-guided generate-avatar."""
    assert unpack_upload(_zip({"refs/reference.png": b"png bytes"}), tmp_path / "inputs", MiB, bundle_required=False) is None
    assert (tmp_path / "inputs/refs/reference.png").read_bytes() == b"png bytes"


def test_a_pass_array_of_the_wrong_shape_is_refused_naming_the_pass(tmp_path):
    root = write_condition_bundle(tmp_path / "bundle", views=2, size=16)
    np.save(root / "renders/v00/f00000/normal.npy", np.zeros((16, 16), np.float32))
    with pytest.raises(FormatError) as refused:
        unpack_upload(io.BytesIO(zip_folder(root)), tmp_path / "inputs", 16 * MiB, bundle_required=True)
    assert refused.value.field == "renders[0].passes.normal"
    assert "shape" in refused.value.message


def test_a_pickled_array_in_a_pass_is_refused_without_unpickling(tmp_path):
    root = write_condition_bundle(tmp_path / "bundle", views=1, size=16)
    np.save(root / "renders/v00/f00000/depth.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError) as refused:
        unpack_upload(io.BytesIO(zip_folder(root)), tmp_path / "inputs", 16 * MiB, bundle_required=True)
    assert refused.value.field == "renders[0].passes.depth"


def test_an_image_of_the_wrong_size_is_refused(tmp_path):
    from PIL import Image

    root = write_condition_bundle(tmp_path / "bundle", views=1, size=16)
    Image.new("L", (8, 8)).save(root / "renders/v00/f00000/mask.png")
    with pytest.raises(FormatError, match="8x8"):
        unpack_upload(io.BytesIO(zip_folder(root)), tmp_path / "inputs", 16 * MiB, bundle_required=True)


def test_a_valid_bundle_round_trips_through_zip(tmp_path):
    root = write_condition_bundle(tmp_path / "bundle", views=3, size=16, with_target=True)
    bundle = unpack_upload(io.BytesIO(zip_folder(root)), tmp_path / "inputs", 16 * MiB, bundle_required=True)
    assert [view.id for view in bundle.views] == ["v00", "v01", "v02"]
    original = np.load(root / "renders/v01/f00000/canonical.npy")
    np.testing.assert_array_equal(np.load(Path(tmp_path / "inputs/renders/v01/f00000/canonical.npy")), original)


def _zip_with_end_record(entries: int, directory_bytes: int) -> io.BytesIO:
    """A one-file zip whose end record declares ``entries`` entries and a central directory of
    ``directory_bytes`` (what a hostile upload can claim)."""
    data = bytearray(_zip({"a": b"x"}, zipfile.ZIP_STORED).getvalue())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8:end + 16] = struct.pack("<HHL", min(entries, 0xFFFF), min(entries, 0xFFFF), directory_bytes)
    return io.BytesIO(bytes(data))


def _zip_listing(count: int) -> tuple[io.BytesIO, int]:
    """A real Zip64 archive whose central directory lists ``count`` entries (one stored file, listed
    ``count`` times); returns it and its directory's size."""
    single = _zip({"a": b"x"}, zipfile.ZIP_STORED).getvalue()
    end = single.rfind(b"PK\x05\x06")
    directory_size, directory_offset = struct.unpack_from("<LL", single, end + 12)
    directory = single[directory_offset:directory_offset + directory_size] * count
    zip64_end_offset = directory_offset + len(directory)
    zip64_end = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), directory_offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_end_offset, 1)
    end_record = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return io.BytesIO(single[:directory_offset] + directory + zip64_end + locator + end_record), len(directory)


def test_a_zip_listing_too_many_entries_is_refused_from_its_end_record_without_reading_the_directory(tmp_path):
    archive, directory_size = _zip_listing(100_001)
    assert len(zipfile.ZipFile(io.BytesIO(archive.getvalue())).infolist()) == 100_001  # a zip the zipfile module reads in full
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput, match="lists 100001 entries") as refused:
            extract_zip(archive, tmp_path, MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.field == "bundle"
    assert peak < directory_size / 10  # the directory (4.7 MB here, 1.9 GB in the probe) was never loaded
    assert not list(tmp_path.iterdir())


def test_a_zip_declaring_a_huge_central_directory_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="central directory") as refused:
        extract_zip(_zip_with_end_record(1, 200 * MiB), tmp_path, MiB)
    assert refused.value.field == "bundle"


@pytest.mark.parametrize("name", ["x" * 300 + ".png", "a/" * 600 + "b.png"])
def test_zip_entries_with_names_too_long_for_a_file_system_are_refused(tmp_path, name):
    with pytest.raises(InvalidInput, match="bytes|characters") as refused:
        extract_zip(_zip({name: b"x"}), tmp_path, MiB)
    assert refused.value.field == "bundle"
    assert not list(tmp_path.iterdir())


def _bundle_with_manifest(tmp_path: Path, edit) -> io.BytesIO:
    root = write_condition_bundle(tmp_path / "bundle", views=1)
    manifest_path = root / "conditions.json"
    text = edit(json.loads(manifest_path.read_text()), manifest_path.read_text())
    manifest_path.write_text(text if isinstance(text, str) else json.dumps(text))
    return io.BytesIO(zip_folder(root))


def _set_landmarks(manifest: dict, landmarks) -> dict:
    manifest["renders"][0]["landmarks"] = landmarks
    return manifest


@pytest.mark.parametrize(("edit", "field"), [
    (lambda manifest, text: _set_landmarks(manifest, {"nose": ["left", 1, 1]}), "renders[0].landmarks.nose"),
    (lambda manifest, text: _set_landmarks(manifest, {"nose": [1, 2]}), "renders[0].landmarks.nose"),
    (lambda manifest, text: text.replace('"landmarks": {}', '"landmarks": {"nose": [1e999, 2, 1]}'), "renders[0].landmarks.nose"),
    (lambda manifest, text: "[" * 100_000 + "]" * 100_000, "conditions.json"),
    (lambda manifest, text: text.replace('"width": 32', '"width": ' + "9" * 5000), "conditions.json"),
    (lambda manifest, text: text.replace('"yaw": -90.0', '"yaw": ' + "9" * 400), "views[0].yaw"),
    (lambda manifest, text: {**manifest, "expression_names": [{"a": 1}]}, "expression_names[0]"),
])
def test_hostile_manifests_are_invalid_input_naming_the_field(tmp_path, edit, field):
    """Non-numeric landmarks, deep nesting, thousands of digits: a clear refusal, never an internal error."""
    with pytest.raises(FormatError) as refused:
        unpack_upload(_bundle_with_manifest(tmp_path, edit), tmp_path / "inputs", 16 * MiB, bundle_required=True)
    assert refused.value.field == field


def test_a_pass_path_too_long_for_a_file_system_is_refused_naming_the_pass(tmp_path):
    def long_pose_path(manifest, text):
        manifest["renders"][0]["passes"]["pose"] = "renders/" + "p" * 300 + ".png"
        return manifest
    with pytest.raises(FormatError, match="bytes") as refused:
        unpack_upload(_bundle_with_manifest(tmp_path, long_pose_path), tmp_path / "inputs", 16 * MiB, bundle_required=True)
    assert refused.value.field == "renders[0].passes.pose"


def _zip_declaring_one_entry(listed: int) -> io.BytesIO:
    """A zip whose central directory lists its one file ``listed`` times while the end record
    declares a single entry (and the directory's true size)."""
    archive, _ = _zip_listing(listed)
    data = bytearray(archive.getvalue())
    end = data.rfind(b"PK\x05\x06")
    single = _zip({"a": b"x"}, zipfile.ZIP_STORED).getvalue()
    directory_size, directory_offset = struct.unpack_from("<LL", single, single.rfind(b"PK\x05\x06") + 12)
    data[end + 8:end + 20] = struct.pack("<HHLL", 1, 1, directory_size * listed, directory_offset)
    return io.BytesIO(bytes(data[:directory_offset + directory_size * listed]) + bytes(data[end:]))


def test_a_zip_whose_directory_outgrows_its_declared_entry_count_is_refused_before_it_is_parsed(tmp_path):
    """Issue 23 item 15: an end record declaring 1 entry before a directory of a million records is
    refused from the end record alone, without holding the directory in memory."""
    archive = _zip_declaring_one_entry(20_000)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput, match="declares 1 entries but a central directory of") as refused:
            extract_zip(archive, tmp_path, MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.field == "bundle" and peak < 200_000
    assert not list(tmp_path.iterdir())


def test_a_zip_whose_directory_holds_another_count_than_declared_is_refused(tmp_path):
    """Issue 23 item 15: a directory of two records under an end record declaring one is refused
    once parsed, before anything is extracted."""
    with pytest.raises(InvalidInput, match="holds 2 entries but its end record declares 1") as refused:
        extract_zip(_zip_declaring_one_entry(2), tmp_path, MiB)
    assert refused.value.field == "bundle" and not list(tmp_path.iterdir())
