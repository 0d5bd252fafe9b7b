"""Uploaded bundle zips: unsafe archives are refused before anything lands outside the job folder."""

from __future__ import annotations

import io
import stat
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
