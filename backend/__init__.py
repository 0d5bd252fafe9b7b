"""Avatar Foundry's backend: models, geometry, the job server and the CLI (torch lives here)."""

__version__ = "0.1.0"
