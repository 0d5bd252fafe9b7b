"""Suite-wide settings: offline always, small thread counts, every test on CPU.

Area fixtures live in ``tests/fixtures/<area>.py`` and are listed in ``pytest_plugins``.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")
os.environ.setdefault("AVATAR_FOUNDRY_DEVICE", "cpu")

pytest_plugins: list[str] = ["tests.fixtures.server", "tests.fixtures.tiny_models", "tests.fixtures.deferred", "tests.fixtures.eg3d", "tests.fixtures.style_prior",
                               "tests.fixtures.nphm_heads"]
