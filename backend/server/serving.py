"""Run the backend: lock the data dir, bind the socket, announce the URL, serve until stopped."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from contextlib import ExitStack

from blender_addon.formats import protocol
from blender_addon.formats.files import atomic_write_json

from ..data_dir import DataDir, ServerLock
from ..errors import InvalidInput
from .app import create_app
from .auth import is_loopback_name
from .config import ServerConfig
from .connections import connection_cap, guarded_protocol, raise_open_file_limit


def check_binding(config: ServerConfig) -> None:
    """Refuse a non-loopback host unless --allow-remote was given; warn when it was."""
    if is_loopback_name(config.host):
        return
    if not config.allow_remote:
        raise InvalidInput(f"binding to {config.host} would expose the backend to other computers",
                           "use the default 127.0.0.1, or pass --allow-remote if you really mean it", field="host")
    print(f"warning: serving on {config.host}: other computers can reach the backend; anyone with the token "
          "can run jobs and read their results", file=sys.stderr)


def check_device(requested: str | None) -> None:
    """Refuse a --device this machine cannot compute on, before anything starts."""
    import torch

    from ..device import pick_device

    try:
        device = pick_device(requested)
    except RuntimeError as error:
        raise InvalidInput(f"{requested!r} is not a device ({error})", "use cpu, cuda, cuda:N or mps", field="device") from None
    available = {"cpu": lambda: True, "cuda": torch.cuda.is_available,
                 "mps": lambda: getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if not available.get(device.type, lambda: False)():
        raise InvalidInput(f"device {device} is not available on this machine", "leave --device out to pick the best available one",
                           field="device")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InvalidInput(f"there is no {device} (this machine has {torch.cuda.device_count()} GPU(s))", field="device")


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted sockets that say so,
    # and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as error:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {error.strerror}",
                           "is another backend running? pick another --port (0 picks a free one)", field="port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def server_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _exit_after_graceful_shutdown() -> None:
    """uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler
    that was installed before it; this one turns that into a normal exit, so cleanup still runs."""

    def exit_quietly(signum: int, frame) -> None:
        raise SystemExit(0)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, exit_quietly)


def _server_stopping_first(app, uvicorn_config):
    """A uvicorn server that, as it starts shutting down, first stops the worker (a running job is
    recorded as interrupted) and then ends every event stream with its job's last state; without
    this the streams would wait for the graceful-shutdown timeout and be cut off mid-job."""
    import anyio
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            backend = getattr(app.state, "backend", None)
            if backend is not None:
                await anyio.to_thread.run_sync(backend.worker.stop)
                backend.streams.stop()
            await super().shutdown(sockets)

    return Server(uvicorn_config)


def run_server(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM; the lock, socket and server.json are released on the way out."""
    import uvicorn

    check_binding(config)
    if config.max_event_streams < 1:
        raise InvalidInput(f"--max-event-streams must be at least 1, got {config.max_event_streams}", field="max_event_streams")
    data_dir = DataDir.at(config.data_dir)
    data_dir.create()
    with ExitStack() as cleanup:
        lock = ServerLock(data_dir)
        lock.acquire()
        cleanup.callback(lock.release)
        check_device(config.device)
        sock = bind_socket(config.host, config.port)
        cleanup.callback(sock.close)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        app = create_app(config)
        url = server_url(sock)
        atomic_write_json(data_dir.server_info_path,
                          {"url": url, "pid": os.getpid(), "protocol_version": protocol.PROTOCOL_VERSION})
        cleanup.callback(data_dir.server_info_path.unlink, missing_ok=True)
        print(f"Avatar Foundry backend on {url}\n  data dir: {data_dir.root}\n  token:    {data_dir.token_path}", file=sys.stderr)
        _exit_after_graceful_shutdown()
        protocol_class = guarded_protocol(connection_cap(config.max_connections, raise_open_file_limit()),
                                          config.request_timeout_seconds)
        uvicorn_config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10, proxy_headers=False,
                                        http=protocol_class)
        _server_stopping_first(app, uvicorn_config).run(sockets=[sock])
    print("Avatar Foundry backend stopped", file=sys.stderr)
