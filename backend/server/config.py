"""The server's settings; ``avatar-foundry serve`` flags map onto these fields one to one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from blender_addon.formats import protocol


@dataclass
class ServerConfig:
    host: str = protocol.DEFAULT_HOST
    port: int = protocol.DEFAULT_PORT
    """0 picks a free port; the URL actually used is written to <data dir>/server.json."""
    data_dir: Path | None = None
    """None: the per-user default (protocol.default_data_dir())."""
    max_upload_mb: int = 512
    """Largest request body (an uploaded, zipped condition bundle)."""
    max_extracted_mb: int = 4096
    """Largest total size of an upload once unzipped (guards against zip bombs)."""
    idle_unload_seconds: float = 600.0
    """Loaded models are freed after this long without a job; 0 keeps them until POST /v1/unload."""
    device: str | None = None
    """'cpu', 'cuda', 'cuda:1', 'mps'; None picks the best available."""
    max_event_streams: int = 64
    """Most event streams (GET /v1/jobs/{id}/events) open at once; past it they get 503 BUSY."""
    max_connections: int = 256
    """Most connections open at once (also kept under a quarter of the open-file limit); more are closed at once."""
    request_timeout_seconds: float = 30.0
    """A connection that sends no complete request line and headers for this long is closed."""
    allow_remote: bool = False
    """Required to bind to a non-loopback address; the Host header check is then skipped."""

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb << 20

    @property
    def max_extracted_bytes(self) -> int:
        return self.max_extracted_mb << 20
