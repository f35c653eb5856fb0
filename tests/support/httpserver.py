"""A real HTTP server on a local port for tests: routes answer canned or computed responses,
and every request is recorded with the moment it arrived. Given an ``ssl.SSLContext`` it
serves HTTPS; as a proxy it sees absolute URLs as paths, so route those."""

import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None  # sent one by one, with `pause` seconds between them
    pause: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


Handler = Callable[[Seen], Reply]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # Clients that give up (a timeout, a rejected certificate) are what the tests provoke.
        if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class LocalServer:
    """``with LocalServer() as server: server.route("/feed.txt", Reply(body=...))``."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.routes: dict[str, list[Reply | Handler]] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers), self.rfile.read(length), time.monotonic())
                with owner._lock:
                    owner.requests.append(seen)
                reply = owner._reply(seen)
                try:
                    self._send(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, reply: Reply):
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunks is not None:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in reply.chunks:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                        if reply.pause:
                            time.sleep(reply.pause)
                    self.wfile.write(b"0\r\n\r\n")
                    return
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.scheme = "https" if tls else "http"
        if tls:
            # The handshake then runs in the request's thread, so a client that rejects the
            # certificate cannot stall the accept loop.
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        # shutdown() waits for the next poll: the default 0.5 s would dominate a fast test.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(self, path: str, *replies: Reply | Handler) -> None:
        """Answer ``path`` with these replies in turn; the last one repeats."""
        self.routes[path] = list(replies)

    def _reply(self, seen: Seen) -> Reply:
        path = seen.path.split("?", 1)[0]
        with self._lock:
            queue = self.routes.get(path)
            if not queue:
                return Reply(404, "not found")
            reply = queue.pop(0) if len(queue) > 1 else queue[0]
        return reply(seen) if callable(reply) else reply

    def hits(self, path: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.path.split("?", 1)[0] == path]

    def __enter__(self) -> "LocalServer":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
