"""Suite-wide settings: offline always, small thread counts, every test on CPU.

Area fixtures live in ``tests/fixtures/<area>.py`` and are listed in ``pytest_plugins``. In a run under
another Blender of the test matrix (``tests/fixtures/blender_matrix.py``), whose Python has no torch, only
modules with Blender-facing tests are collected and only fixtures without torch are loaded.
"""

import os
import sys
from pathlib import Path

import pytest

from tests.fixtures.blender_matrix import IN_BLENDER_MATRIX, unsafe_finalization, declares_blender_tests

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")
os.environ.setdefault("AVATAR_FOUNDRY_DEVICE", "cpu")

BLENDER_FACING_FIXTURES = ["tests.fixtures.server"]
BACKEND_FIXTURES = ["tests.fixtures.tiny_models", "tests.fixtures.deferred", "tests.fixtures.eg3d", "tests.fixtures.style_prior",
                    "tests.fixtures.nphm_heads"]
pytest_plugins: list[str] = BLENDER_FACING_FIXTURES + ([] if IN_BLENDER_MATRIX else BACKEND_FIXTURES)


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """Under another Blender of the matrix, test modules without Blender-facing tests are not imported."""
    if IN_BLENDER_MATRIX and collection_path.is_file() and collection_path.name.startswith("test_") \
            and not declares_blender_tests(collection_path):
        return True
    return None


EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Where the bpy module was loaded (its teardown is not safe: ``unsafe_finalization``), the run ends
    here, with pytest's own exit status, once everything is reported."""
    if unsafe_finalization():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash.get(EXIT_STATUS, 1))
