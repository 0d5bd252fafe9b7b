"""multipart/form-data encoding for ``POST /v1/jobs`` (a JSON ``request`` field and a zip file)."""

from __future__ import annotations

import uuid


def encode_multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """Body and Content-Type for text ``fields`` and ``files`` (name -> (file name, bytes, mime type))."""
    boundary = f"avatar-foundry-{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
                     f"Content-Type: application/json; charset=utf-8\r\n\r\n".encode() + value.encode("utf-8") + b"\r\n")
    for name, (file_name, data, mime) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file_name}"\r\n'
                     f"Content-Type: {mime}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
