"""A fault-injecting HTTP/1.1 proxy between siprecd and the S3 server, for the
faults a real server cannot be made to produce on demand (docs/guarantees.md):

- drop_reply(req) -> True: the request is forwarded, the server's whole reply is
  read (so the server has done the work), and the client's connection is closed
  without a byte of it: a reply lost on the way back.
- rewrite_etags: ETag headers of object responses (PUT without a part number,
  HEAD, GET) are replaced by a deterministic non-MD5 value, as an SSE-KMS
  server returns them. Part ETags are left alone: requests are signed, so the
  proxy cannot map them back in a CompleteMultipartUpload body.

Requests are parsed (request line, headers, Content-Length body; curl does not
pipeline) and so are responses (1xx, HEAD, Content-Length, chunked), so that
every reply is matched with its request. Standard library only."""

from __future__ import annotations

import hashlib
import queue
import socket
import threading
from dataclasses import dataclass, field
from typing import Callable

LOOPBACK = "127.0.0.1"


@dataclass
class Request:
    method: str
    target: str  # path and query as sent
    headers: dict = field(default_factory=dict)  # names lower-cased

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""


def kms_etag(etag: str) -> str:
    """What an SSE-KMS server says instead of the MD5: 32 hex digits, not the body's MD5."""
    bare = etag.strip('"')
    suffix = "-" + bare.split("-", 1)[1] if "-" in bare else ""
    return '"' + hashlib.md5(("kms:" + bare).encode()).hexdigest() + suffix + '"'


class _Reader:
    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                return None
        i = self.buf.index(b"\r\n\r\n") + 4
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exactly(self, n: int, sink: Callable[[bytes], None]):
        while n > 0:
            if not self.buf and not self._fill():
                raise EOFError
            chunk, self.buf = self.buf[:n], self.buf[n:]
            n -= len(chunk)
            sink(chunk)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        return out


def _parse_head(raw: bytes) -> tuple[str, dict, list[str]]:
    lines = raw.decode("latin-1").split("\r\n")
    headers = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers, lines


class FaultProxy:
    def __init__(self, target_port: int, drop_reply: Callable[[Request], bool] | None = None,
                 rewrite_etags: bool = False):
        self.target = (LOOPBACK, target_port)
        self.drop_reply = drop_reply or (lambda r: False)
        self.rewrite_etags = rewrite_etags
        self.dropped: list[Request] = []   # requests whose reply was dropped
        self.rewritten = 0                 # ETag headers rewritten
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        self.sock.close()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(self.target, 5)
            except OSError:
                c.close()
                continue
            pending: queue.Queue = queue.Queue()
            threading.Thread(target=self._upstream, args=(c, s, pending), daemon=True).start()
            threading.Thread(target=self._downstream, args=(s, c, pending), daemon=True).start()

    @staticmethod
    def _close(*socks):
        for x in socks:
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def _upstream(self, c: socket.socket, s: socket.socket, pending: queue.Queue):
        r = _Reader(c)
        try:
            while True:
                raw = r.head()
                if raw is None:
                    break
                first, headers, _ = _parse_head(raw)
                parts = first.split(" ")
                req = Request(parts[0], parts[1] if len(parts) > 1 else "", headers)
                with self.lock:
                    self.requests.append(req)
                pending.put(req)
                s.sendall(raw)
                r.exactly(int(headers.get("content-length", "0") or 0), s.sendall)
        except (OSError, EOFError):
            pass
        finally:
            pending.put(None)
            self._close(c, s)

    def _downstream(self, s: socket.socket, c: socket.socket, pending: queue.Queue):
        r = _Reader(s)
        try:
            while True:
                raw = r.head()
                if raw is None:
                    break
                first, headers, lines = _parse_head(raw)
                status = int(first.split(" ")[1])
                if 100 <= status < 200:  # 100 Continue: not the reply
                    c.sendall(raw)
                    continue
                req = pending.get(timeout=30)
                if req is None:
                    break
                drop = self.drop_reply(req)
                if self.rewrite_etags and "etag" in headers and not drop and self._object_reply(req):
                    out = []
                    for ln in lines:
                        if ln.lower().startswith("etag:"):
                            ln = "ETag: " + kms_etag(ln.split(":", 1)[1].strip())
                            with self.lock:
                                self.rewritten += 1
                        out.append(ln)
                    raw = "\r\n".join(out).encode("latin-1")
                body: list[bytes] = []
                send = body.append if drop else c.sendall
                if not drop:
                    c.sendall(raw)
                if req.method == "HEAD" or status in (204, 304):
                    pass
                elif "chunked" in headers.get("transfer-encoding", "").lower():
                    while True:
                        ln = r.line()
                        send(ln)
                        n = int(ln.split(b";")[0].strip(), 16)
                        r.exactly(n + 2, send)
                        if n == 0:
                            break
                elif "content-length" in headers:
                    r.exactly(int(headers["content-length"]), send)
                if drop:
                    with self.lock:
                        self.dropped.append(req)
                    break  # the whole reply is in: close the client without it
        except (OSError, EOFError, queue.Empty):
            pass
        finally:
            self._close(s, c)

    @staticmethod
    def _object_reply(req: Request) -> bool:
        q = req.query
        if req.method in ("HEAD", "GET"):
            return "versions" not in q.split("&")
        return req.method == "PUT" and "partNumber=" not in q and "retention" not in q
