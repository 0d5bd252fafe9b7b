"""Avatar Foundry's backend: models, geometry, the job server and the CLI (torch lives here)."""

import os

# Weights only ever load from local files. The Hugging Face libraries read these once, when they
# are first imported, so they are set here, before any backend module imports them.
for _variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DIFFUSERS_OFFLINE"):
    os.environ[_variable] = "1"

__version__ = "0.1.0"
