"""Loopback servers for the I/O tests: an http.server in a thread, and moto's S3 server."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "/files/" + path[len("/redirect/") :])
            self.end_headers()
        elif path.startswith("/files/") and path[len("/files/") :] in self.files:
            body = self.files[path[len("/files/") :]]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif path == "/slow":
            time.sleep(3)
            self._reply(200, b"late")
        elif path == "/slow-body":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"abc")
            self.wfile.flush()
            time.sleep(3)
        elif path == "/chunked-big":
            self.send_response(200)  # no Content-Length: the size is only known while reading
            self.end_headers()
            self.wfile.write(b"x" * 5000)
            self.close_connection = True
        elif path == "/uc":  # a Google Drive look-alike: a warning page first, the file once confirmed
            query = self.path.split("?", 1)[1] if "?" in self.path else ""
            if "confirm=" in query:
                self._reply(200, b"drive file body")
            elif "id=quota" in query:
                self._reply(200, b"<html>quota exceeded</html>", "text/html")
            else:
                page = b'<html><form><input type="hidden" name="confirm" value="t0k3n"></form></html>'
                self._reply(200, page, "text/html; charset=utf-8")
        elif path == "/error":
            self._reply(500, b"boom")
        else:
            self._reply(404, b"missing")

    def _reply(self, code: int, body: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextmanager
def http_server(files: dict[str, bytes]) -> Iterator[str]:
    """Serve ``files`` under /files/, plus /redirect/<name>, /slow, /slow-body, /error; yields the base URL."""
    handler = type("Handler", (_Handler,), {"files": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def s3_server() -> Iterator[dict[str, Any]]:
    """moto's S3 server on loopback; yields s3fs storage options pointing at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"},
        }
    finally:
        server.stop()
