"""`tradegraph web`: the read-only dashboard over the journal, on 127.0.0.1 by default."""

from __future__ import annotations

import argparse
import errno
import socket
import sys

from tools.errors import ConfigError
from tradegraph.cli_common import SubParsers
from tradegraph.commands.chat_cmd import add_chat_flags, open_chat

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def register(sub: SubParsers) -> None:
    p = sub.add_parser("web", help="serve the read-only dashboard (timeline, decisions, equity, denials, chat)")
    add_chat_flags(p)
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.set_defaults(handler=cmd_web)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one clear error when the port is taken or not allowed."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a port number")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} cannot be resolved ({exc.strerror})") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use (choose another with --port)") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def cmd_web(args: argparse.Namespace) -> int:
    import uvicorn

    from tradegraph.composition import web_app

    sock = bind(args.host, args.port)  # a port in use fails before the journal is opened
    try:
        session = open_chat(args)
    except BaseException:
        sock.close()
        raise
    try:
        app = web_app(session)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        if args.host not in LOOPBACK:
            print(f"tradegraph: warning: serving on {args.host}, reachable from other machines; the dashboard has "
                  "no authentication", file=sys.stderr)  # fmt: skip
        print(f"tradegraph web: http://{shown}:{port}/ · journal {session.reader.path} (read-only) · chat: "
              f"{session.description} · Ctrl-C stops", flush=True)  # fmt: skip
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5)
        )
        server.run(sockets=[sock])
        return 0
    finally:
        sock.close()
        session.close()
        session.reader.close()
