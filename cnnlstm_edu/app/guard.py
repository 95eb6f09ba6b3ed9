"""What the server refuses before gradio sees a request: blob uploads, URLs, oversized uploads.

A teacher serves the app to a room, so any browser on that network can send any request. The
app needs a few routes of gradio's server; this ASGI middleware, put in front of it by
:func:`~.server.launch`, closes or bounds the rest:

- ``/component_server`` is closed. Its only use here would be the drawing pad's
  ``accept_blobs``, which grows a list up to an index the caller picks and keeps every upload
  forever. The pad calls it only when a ``change``/``input`` event listens to it; ours has
  none, and sends its drawing through ``/upload`` instead (tests/test_app_browser.py draws).
- Every URL input is refused: ``/file=http...``, ``/proxy=...``, and a request whose JSON holds
  a file entry with a remote ``path``. The app never needs a remote file, and gradio would
  fetch it, so the server would connect out for any client.
- Uploads are bounded per request, per client (its address) and overall, over the time gradio
  keeps uploaded files (``delete_cache``). Beyond that: 413, with a message saying the limit.
- Other POST bodies are JSON of at most ``json_bytes``; a multipart body elsewhere is refused.

>>> refusal("/gradio_api/file=https://example.com/x.png")[0]
403
>>> refusal("/gradio_api/file=/tmp/gradio/abc/composite.png") is None
True
>>> remote_file_entry({"data": [{"path": "http://10.0.0.1/x.png", "meta": {"_type": "gradio.FileData"}}]})
'http://10.0.0.1/x.png'
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["RequestGuard", "UploadLimits", "UploadLedger", "refusal", "remote_file_entry"]

MB = 1024 * 1024
# A scheme ("http:", "file:", "ftp:"...) or a network path ("//host", "\\host"): not a local file.
_URL = re.compile(r"^\s*(?:[a-zA-Z][a-zA-Z0-9+.\-]*:|//|\\\\)")


def is_url(text) -> bool:
    """True for anything that names a remote resource rather than a local path.

    >>> [is_url(s) for s in ("https://a.b/c", "//a.b/c", "file:///etc/passwd", "/tmp/x.png")]
    [True, True, True, False]
    """
    return isinstance(text, str) and bool(_URL.match(text))


@dataclass(frozen=True)
class UploadLimits:
    request_bytes: int = 3 * MB     # one upload request (the pad sends ~10-30 kB per drawing)
    client_bytes: int = 8 * MB      # one address, over `window` seconds
    total_bytes: int = 32 * MB      # everyone, over `window` seconds: what the upload folder can hold
    window: float = 4500.0          # gradio deletes uploads after an hour, checking every 15 min
    json_bytes: int = 1 * MB        # any other POST body (an event's inputs)
    # Every upload counts at least this much, however small: empty uploads would otherwise each
    # add a ledger entry for free, and the ledger holds at most total_bytes / request_cost entries.
    request_cost: int = 4096

    def __post_init__(self) -> None:
        from ..checks import check_number

        for name in ("request_bytes", "client_bytes", "total_bytes", "json_bytes", "request_cost"):
            check_number(getattr(self, name), name, integer=True, low=1, owner="UploadLimits")
        check_number(self.window, "window", low=0, low_open=True, owner="UploadLimits")


class UploadLedger:
    """The upload bytes accepted in the last ``window`` seconds, per client and overall.

    >>> ledger = UploadLedger(UploadLimits(request_bytes=10, client_bytes=15, total_bytes=20, request_cost=1))
    >>> ledger.reserve("a", 10), ledger.reserve("a", 10) is not None, ledger.reserve("b", 10)
    (None, True, None)
    >>> ledger.reserve("c", 1)
    'the server holds its most uploads for now (20 bytes over 75 minutes); try again later'
    """

    def __init__(self, limits: UploadLimits, clock=time.monotonic) -> None:
        self.limits, self._clock = limits, clock
        self._entries: deque[tuple[float, str, int]] = deque()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._entries and self._entries[0][0] < now - self.limits.window:
            self._entries.popleft()

    def reserve(self, client: str, size: int) -> str | None:
        """Count ``size`` bytes for ``client``; or, if that would pass a limit, why not."""
        lim = self.limits
        size = max(size, lim.request_cost)
        if size > lim.request_bytes:
            return f"one upload may carry at most {_size(lim.request_bytes)}; this one has {_size(size)}"
        with self._lock:
            now = self._clock()
            self._expire(now)
            mine = sum(n for _, c, n in self._entries if c == client)
            total = sum(n for _, _, n in self._entries)
            minutes = f"{lim.window / 60:g} minutes"
            if mine + size > lim.client_bytes:
                return f"this address may upload at most {_size(lim.client_bytes)} over {minutes}; try again later"
            if total + size > lim.total_bytes:
                return (f"the server holds its most uploads for now ({_size(lim.total_bytes)} over "
                        f"{minutes}); try again later")
            self._entries.append((now, client, size))
        return None

    def release(self, client: str, size: int) -> None:
        """An upload that was not stored (gradio refused it) no longer counts."""
        size = max(size, self.limits.request_cost)
        with self._lock:
            for i in range(len(self._entries) - 1, -1, -1):
                if self._entries[i][1:] == (client, size):
                    del self._entries[i]
                    return

    def held(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return sum(n for _, _, n in self._entries)


def _size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB / 10 else f"{n:,} bytes"


def refusal(path: str) -> tuple[int, str] | None:
    """Status and message for a route the app closes, by path; None for the routes it serves."""
    if "/component_server" in path:
        return 404, "This server does not offer component functions (the drawing pad uploads its drawing instead)."
    for route in ("/file=", "/proxy="):
        if route in path:
            target = path.split(route, 1)[1]
            if route == "/proxy=" or is_url(target):
                return 403, "This server serves only its own files: URL inputs are refused."
    return None


def remote_file_entry(data, depth: int = 0) -> str | None:
    """The first remote ``path`` or ``url`` of a file entry in a JSON value, if any.

    A file entry's ``url`` may name this server's own ``/file=`` route (the page sends that
    back); anything else remote is refused.

    >>> remote_file_entry([{"path": "/tmp/gradio/a.png", "url": "http://host:7860/gradio_api/file=/tmp/gradio/a.png"}])
    >>> remote_file_entry({"path": "/tmp/a.png", "url": "https://evil.example/x"})
    'https://evil.example/x'
    """
    if depth > 64:
        return "(nested too deep)"
    if isinstance(data, dict):
        path, url = data.get("path"), data.get("url")
        if is_url(path):
            return path
        if is_url(url) and ("/file=" not in url or is_url(url.split("/file=", 1)[1])):
            return url
        values = data.values()
    elif isinstance(data, list):
        values = data
    else:
        return None
    for value in values:
        found = remote_file_entry(value, depth + 1)
        if found:
            return found
    return None


async def _respond(send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


class RequestGuard:
    """ASGI middleware: closes the routes the app does not need and bounds the ones it does."""

    def __init__(self, app, limits: UploadLimits | None = None) -> None:
        self.app = app
        self.ledger = UploadLedger(limits or UploadLimits())

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        closed = refusal(path)
        if closed:
            return await _respond(send, *closed)
        if scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        if path.rstrip("/").endswith("/upload"):
            return await self._upload(scope, receive, send)
        return await self._json(scope, receive, send)

    async def _upload(self, scope, receive, send) -> None:
        length = _header(scope, b"content-length")
        if not length.isdigit():
            return await _respond(send, 411, "Upload refused: send its size (Content-Length).")
        size = int(length)
        client = (scope.get("client") or ("?",))[0]
        why = self.ledger.reserve(client, size)
        if why:
            return await _respond(send, 413, f"Upload refused: {why}.")
        seen = 0
        status = {}

        async def counted_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > size:                          # more than it declared: cut it off
                return {"type": "http.disconnect"}
            return message

        async def watched_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        finally:
            if status.get("code") != 200:            # not stored: it does not count
                self.ledger.release(client, size)

    async def _json(self, scope, receive, send) -> None:
        if _header(scope, b"content-type").startswith("multipart/"):
            return await _respond(send, 415, "Only uploads (/upload) may send files to this server.")
        limit = self.ledger.limits.json_bytes
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return                                # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await _respond(send, 413, f"Request refused: at most {_size(limit)} of inputs.")
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            remote = remote_file_entry(json.loads(body)) if body else None
        except (ValueError, RecursionError):
            remote = None                             # not JSON: gradio answers it
        if remote:
            return await _respond(send, 400, f"Refused: a file input names a remote resource ({remote[:80]}); "
                                             "this server takes only files uploaded to it.")
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
