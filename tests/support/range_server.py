"""A local HTTP server for one file with Range requests (what GDAL's /vsicurl/ needs), that stops midway on purpose.

``python -m tests.support.range_server FILE BUDGET`` serves FILE at ``http://127.0.0.1:PORT/NAME`` (the port is
printed on the first line) with HEAD (size, ``ETag`` and ``Last-Modified`` from the file as it is now, so a file
replaced on disk is seen as changed) and ranged GET; other paths are 404. Once BUDGET bytes of ranges have been sent,
every request gets its connection closed without a reply ("Empty reply from server"), as from a server that died. It
runs in its own process: an in-process server would wait for the GIL that a GDAL read holds.
"""

from __future__ import annotations

import email.utils
import http.server
import os
import re
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _file(self) -> bytes | None:
        srv = self.server
        if srv.dead.is_set():
            self.close_connection = True
            return None
        if self.path.split("?")[0] != "/" + os.path.basename(srv.file):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        with open(srv.file, "rb") as f:
            return f.read()

    def _headers(self, size: int) -> None:
        st = os.stat(self.server.file)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        self.send_header("Content-Length", str(size))

    def do_HEAD(self) -> None:
        data = self._file()
        if data is not None:
            self.send_response(200)
            self._headers(len(data))
            self.end_headers()

    def do_GET(self) -> None:
        data = self._file()
        if data is None:
            return
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if not m:
            self.send_response(200)
            self._headers(len(data))
            self.end_headers()
            self.wfile.write(data)
            return
        a = int(m.group(1))
        b = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {a}-{b}/{len(data)}")
        self._headers(b - a + 1)
        self.end_headers()
        self.wfile.write(data[a : b + 1])
        with self.server.lock:
            self.server.sent += b - a + 1
            if self.server.sent >= self.server.budget:
                self.server.dead.set()


def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.file, server.budget, server.sent = sys.argv[1], int(sys.argv[2]), 0
    server.lock, server.dead = threading.Lock(), threading.Event()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
