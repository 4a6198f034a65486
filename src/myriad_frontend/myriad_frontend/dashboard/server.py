"""The dashboard's HTTP server: static page + JSON API on ThreadingHTTPServer, token check, background run."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
import threading
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from myriad_storage.store import Store

from .api import JSON, Api
from .jsonutil import dumps
from .live import LivePoller

log = logging.getLogger(__name__)
COOKIE = "myriad_dashboard_token"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
_LOCAL_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback IP addresses."""
    name = host.strip("[]").lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


REQUEST_TIMEOUT_S = 30.0  # an idle or half-sent connection is closed after this long


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout_s  # read by StreamRequestHandler.setup: every socket op
        super().setup()

    def log_message(self, fmt: str, *args: object) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, ctype: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _token_given(self, query: dict[str, str]) -> str:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:].strip()
        if query.get("token"):
            return query["token"]
        try:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return ""
        return unquote(cookie[COOKIE].value) if COOKIE in cookie else ""

    def _allowed(self, query: dict[str, str]) -> bool:
        token = self.server.token
        if token is None:  # loopback only: refuse foreign Host names (DNS rebinding)
            host = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
            return is_loopback(host)
        return hmac.compare_digest(self._token_given(query).encode(), token.encode())

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        if not self._allowed(query):
            body = dumps(
                {"error": "unauthorized: this dashboard needs its token (?token=… or a Bearer header)"}
            )
            self._send(401, JSON, body, {"WWW-Authenticate": 'Bearer realm="myriad"'})
            return
        extra: dict[str, str] = {}
        if self.server.token is not None and query.get("token"):
            extra["Set-Cookie"] = (
                f"{COOKIE}={quote(self.server.token, safe='')}; HttpOnly; SameSite=Strict; Path=/"
            )
        try:
            if url.path in STATIC:
                name, ctype = STATIC[url.path]
                self._send(200, ctype, _static(name), {"Cache-Control": "no-cache", **extra})
                return
            status, ctype, body = self.server.api.handle(url.path, query)
            cache = (
                "private, max-age=86400, immutable"
                if url.path == "/api/image" and status == 200
                else "no-store"
            )
            self._send(status, ctype, body, {"Cache-Control": cache, **extra})
        except Exception as exc:  # noqa: BLE001 - answer the client; the server keeps serving
            log.exception("dashboard request %s failed", self.path)
            self._send(500, JSON, dumps({"error": f"{type(exc).__name__}: {exc}"[:500]}))

    def _refuse(self) -> None:
        self._send(405, JSON, dumps({"error": "read-only: only GET is served"}), {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815


class DashboardServer(ThreadingHTTPServer):
    """The bound dashboard; ``start()`` serves from background threads, ``stop()`` shuts everything down."""

    daemon_threads = True

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        poll_interval_s: float = 1.0,
        world: str | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(f"binding the dashboard to {host!r} (not loopback) requires a token")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), _Handler)
        except (OSError, OverflowError) as exc:  # in use, not permitted, out of range
            store.close()
            raise ValueError(
                f"dashboard: cannot listen on {host}:{port} ({getattr(exc, 'strerror', None) or exc}); choose another port "
                f"(--port, or --dashboard-port of myriad collect)"
            ) from None
        self.store = store
        self.request_timeout_s = request_timeout_s
        self.token = token or None
        self.poller = LivePoller(store, interval_s=poll_interval_s)
        self.api = Api(store, self.poller, world)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's URL (with the token, if any)."""
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/" + (f"?token={quote(self.token, safe='')}" if self.token else "")

    def start(self) -> DashboardServer:
        """Serve in a daemon thread and start the poller (idempotent); returns self."""
        if self._thread is None:
            self.poller.start()
            self._thread = threading.Thread(target=self.serve_forever, name="dashboard-http", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, stop the poller, close the socket and the database client."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.poller.stop()
        self.server_close()
        self.store.close()
