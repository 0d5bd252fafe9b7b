"""``avatar-foundry serve``: the local job server the Blender add-on talks to."""

from __future__ import annotations

import argparse
from pathlib import Path

from blender_addon.formats import protocol


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the backend HTTP server (the add-on connects to it)",
                                   description="Run the Avatar Foundry backend: an HTTP API on loopback, with a token, "
                                               "that queues and runs jobs one at a time on the device.")
    parser.add_argument("--host", default=protocol.DEFAULT_HOST, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=protocol.DEFAULT_PORT, help="port (default %(default)s; 0 picks a free one)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"token, job database, job folders and models (default {protocol.default_data_dir()})")
    parser.add_argument("--max-upload-mb", type=int, default=512, help="largest upload accepted (default %(default)s)")
    parser.add_argument("--max-extracted-mb", type=int, default=4096,
                        help="largest size of an upload once unzipped (default %(default)s)")
    parser.add_argument("--idle-unload-seconds", type=float, default=600.0,
                        help="free loaded models after this long without jobs; 0 never (default %(default)s)")
    parser.add_argument("--max-event-streams", type=int, default=64,
                        help="most job event streams open at once; more are refused with 503 (default %(default)s)")
    parser.add_argument("--max-connections", type=int, default=256,
                        help="most connections open at once; more are closed at once (default %(default)s)")
    parser.add_argument("--request-timeout-seconds", type=float, default=30.0,
                        help="close a connection that sends no complete request for this long (default %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback --host (other computers can then reach the backend)")
    parser.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    from ..server.config import ServerConfig
    from ..server.serving import run_server

    run_server(ServerConfig(host=args.host, port=args.port, data_dir=args.data_dir, max_upload_mb=args.max_upload_mb,
                            max_extracted_mb=args.max_extracted_mb, idle_unload_seconds=args.idle_unload_seconds,
                            max_event_streams=args.max_event_streams, max_connections=args.max_connections,
                            request_timeout_seconds=args.request_timeout_seconds, device=args.device,
                            allow_remote=args.allow_remote))
    return 0
