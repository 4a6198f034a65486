"""Myriad dashboard: live campaign overview, database browser and work items in a web page (read-only).

``serve(uri, database)`` binds and starts it in background threads; ``main(argv)`` runs it standalone.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from myriad_storage.store import Store

from .server import REQUEST_TIMEOUT_S, DashboardServer, is_loopback

__all__ = ["DashboardServer", "main", "serve"]
TOKEN_ENV = "MYRIAD_DASHBOARD_TOKEN"


def serve(
    uri: str,
    database: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    poll_interval_s: float = 1.0,
    world: str | None = None,
    request_timeout_s: float = REQUEST_TIMEOUT_S,
) -> DashboardServer:
    """Bind the dashboard on host:port (0 = any free port) and start serving; ``.url`` is its address.

    A host that is not loopback requires ``token``; with a token every request must carry it. A connection
    idle for ``request_timeout_s`` (a request half sent, a kept-alive socket) is closed.
    """
    server = DashboardServer(
        Store(uri, database, server_timeout_ms=15000),
        host,
        port,
        token,
        poll_interval_s,
        world,
        request_timeout_s,
    )
    return server.start()


def main(argv: list[str] | None = None) -> int:
    """Run the dashboard until interrupted: ``--mongo-uri`` (or $MYRIAD_MONGO_URI), ``--database``, …"""
    p = argparse.ArgumentParser(prog="myriad-dashboard", description=__doc__.splitlines()[0])
    p.add_argument("--mongo-uri", default=os.environ.get("MYRIAD_MONGO_URI", ""))
    p.add_argument("--database", default="myriad")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV) or None, help=f"or ${TOKEN_ENV}")
    p.add_argument("--world", default=None, help="world YAML whose camera projects the grasp (default tray)")
    args = p.parse_args(argv)
    if not args.mongo_uri:
        p.error("no database: pass --mongo-uri or set MYRIAD_MONGO_URI")
    if not is_loopback(args.host) and not args.token:
        p.error(f"--host {args.host} is not loopback: pass --token (or set {TOKEN_ENV})")
    server = serve(args.mongo_uri, args.database, args.host, args.port, args.token, world=args.world)
    print(f"Myriad dashboard: {server.url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
