"""The app under a hostile client: a real server on 127.0.0.1, sent the requests of issue 13.

Items 1-3 and 6: the drawing pad's blob route, uploads that would fill the disk, URLs the server
would fetch, and wrong values through the API (issue 15's task selector among them). While the server stays up, its resident memory
grows by less than 50 MB and its upload folder holds less than 50 MB. Every loop is bounded and
every request goes to loopback. The server is a process of its own (so its memory is its own),
started by a small script that patches ``socket.getaddrinfo``: any lookup of the probe's host
name, which an outgoing connection would start with, is written to a file the tests read.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

PROBE_HOST = "cnnlstm-edu-ssrf-probe.example"        # a name the server must never look up
MB = 1024 * 1024
SERVER = """
import socket, sys, threading
real = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):
    if {probe!r} in str(host):
        with open({lookups!r}, "a") as f:
            f.write(str(host) + "\\n")
        raise socket.gaierror("the test never lets this name resolve")
    return real(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
from cnnlstm_edu.app import build_demo, launch
launch(build_demo(device="cpu", final_test=200), port={port}, prevent_thread_lock=True, quiet=True)
print("serving", flush=True)
threading.Event().wait()
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / MB


class Server:
    def __init__(self, proc, url: str, uploads: Path, lookups: Path) -> None:
        self.proc, self.url, self.uploads, self.lookups = proc, url, uploads, lookups

    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    def looked_up(self) -> list[str]:
        return self.lookups.read_text().split() if self.lookups.exists() else []


@pytest.fixture(scope="module")
def server(free_port, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    port, lookups, uploads = free_port(), root / "lookups.txt", root / "uploads"
    script = SERVER.format(probe=PROBE_HOST, lookups=str(lookups), port=port)
    env = dict(os.environ, GRADIO_TEMP_DIR=str(uploads), TMPDIR=str(root))
    log = (root / "server.log").open("w")              # a file: a pipe nobody reads could fill up
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while "serving" not in (root / "server.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (root / "server.log").read_text()[-2000:]
            time.sleep(0.2)
        yield Server(proc, url, uploads, lookups)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def config(server):
    return httpx.get(f"{server.url}/config", timeout=30).json()


@pytest.fixture(scope="module")
def baseline(server, config):
    """The server's resident memory once it serves, before any hostile request."""
    return server.rss()


@pytest.fixture(scope="module")
def http(server, baseline):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def _sketchpad_id(config) -> int:
    return next(c["id"] for c in config["components"] if c["type"] == "imageeditor")


def _fn_index(config, api_name: str) -> int:
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, format="PNG")
    return out.getvalue()


def test_blob_route_is_closed_and_keeps_nothing(server, http, config):
    sketch = _sketchpad_id(config)
    before = server.rss()
    for i in range(20):                                # each under a new id: nothing may be kept
        form = {"component_id": str(sketch), "session_hash": f"hostile-{i}", "fn_name": "accept_blobs",
                "type": "layer", "index": str(10_000_000), "id": f"blob-{i}"}
        r = http.post("/gradio_api/component_server", data=form,
                      files={"file": ("layer.png", os.urandom(512 * 1024), "image/png")})
        assert r.status_code == 404, r.text[:200]
    r = http.post("/gradio_api/component_server/", json={"component_id": sketch, "session_hash": "x",
                                                          "fn_name": "accept_blobs", "data": {}})
    assert r.status_code == 404
    assert server.rss() - before < 50


def test_uploads_are_bounded_per_request_per_client_and_overall(server, http):
    folder = server.uploads
    # One request with 50 distinct 2 MB files: refused before it is read.
    files = [("files", (f"f{i}.png", os.urandom(2 * MB), "image/png")) for i in range(50)]
    r = http.post("/gradio_api/upload", files=files)
    assert r.status_code == 413 and "at most" in r.text
    # Then 1 MB files, one per request, until the server says no (bounded: 40 tries).
    codes = []
    for i in range(40):
        r = http.post("/gradio_api/upload", files={"files": (f"g{i}.png", os.urandom(MB), "image/png")})
        codes.append(r.status_code)
        if r.status_code == 413:
            assert "this address may upload at most" in r.text or "holds its most uploads" in r.text
            break
    assert codes[0] == 200 and codes[-1] == 413 and len(codes) < 40
    assert folder_mb(folder) < 50


def test_url_inputs_are_refused_without_connecting_out(server, http, config):
    for path in (f"/gradio_api/file=http://{PROBE_HOST}/x.png", f"/gradio_api/file=https://{PROBE_HOST}/x.png",
                 f"/gradio_api/file=//{PROBE_HOST}/x.png", f"/gradio_api/proxy=https://{PROBE_HOST}/x"):
        r = http.get(path)
        assert r.status_code == 403 and "URL inputs are refused" in r.text, path
    # A drawing whose file entry names a remote image, sent as the page sends an event.
    fn_index = _fn_index(config, "try_sketch")
    entry = {"path": f"https://{PROBE_HOST}/digit.png", "meta": {"_type": "gradio.FileData"}}
    body = {"data": [None, {"background": None, "layers": [], "composite": entry}, "1234"],
            "fn_index": fn_index, "session_hash": "hostile-url", "event_data": None, "trigger_id": None}
    r = http.post("/gradio_api/queue/join", json=body)
    assert r.status_code == 400 and "remote resource" in r.text
    entry = {"path": "/tmp/x.png", "url": f"http://{PROBE_HOST}/x.png", "meta": {"_type": "gradio.FileData"}}
    body["data"][1]["composite"] = entry
    assert http.post("/gradio_api/queue/join", json=body).status_code == 400
    assert server.looked_up() == []                   # the server never tried to reach the host


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=False)


@pytest.mark.parametrize("position, value, field", [
    (2, "abc", "hidden size"), (2, [1, 2], "hidden size"), (4, "64", "batch size"),
    (3, {"x": 1}, "learning rate"), (6, [15], "how long"),
])
def test_wrong_types_in_number_fields_name_the_field(client, position, value, field):
    from gradio_client.exceptions import AppError

    args = ["CNN-LSTM", "1234", 128, 4e-3, 128, "seconds", 2]
    args[position] = value
    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name="/train")
    message = str(caught.value)
    assert field in message and "number" in message and message != "Error", message


@pytest.mark.parametrize("value", ["spirals", ["direction"], 7, "Direction"])
def test_a_bad_task_names_the_field_and_its_choices_before_any_work(client, value):
    from gradio_client.exceptions import AppError

    for args, endpoint in ((["CNN-LSTM", "1234", 128, 4e-3, 128, "seconds", 2, value], "/train"),
                           ([0, "1234", value], "/try_digit")):
        with pytest.raises(AppError) as caught:
            client.predict(*args, api_name=endpoint)
        message = str(caught.value)
        assert "task must be one of quadrants, direction; got" in message, message


def test_a_quadrant_order_on_direction_is_refused_with_its_reason(client):
    status, *_ = client.predict("CNN-LSTM", "4321", 128, 4e-3, 32, "seconds", 2, "direction", api_name="/train")
    assert "Quadrant order applies to the quadrants task only" in status and "Training on" not in status


@pytest.mark.parametrize("name, content, says", [
    ("huge.png", _png(10_000, 10_000), "pixels"),
    ("notes.txt", b"not an image at all\n" * 100, "image"),
])
def test_bad_drawings_name_the_field(client, tmp_path, name, content, says):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = tmp_path / name
    path.write_bytes(content)
    drawing = {"background": None, "layers": [], "composite": handle_file(str(path))}
    with pytest.raises(AppError) as caught:
        client.predict(drawing, "1234", api_name="/try_sketch")
    message = str(caught.value)
    assert "drawing" in message and says in message, message


def test_the_server_stayed_small(server, http, baseline):
    """Run last in this file: after everything above, memory and disk stayed bounded."""
    folder = server.uploads
    for i in range(5):                                 # the whole barrage once more, quickly
        http.post("/gradio_api/component_server", data={"component_id": "1", "session_hash": "h",
                                                        "fn_name": "accept_blobs", "type": "layer",
                                                        "index": "100000000", "id": f"z{i}"},
                  files={"file": ("l.png", b"x" * 1000, "image/png")})
        http.post("/gradio_api/upload", files={"files": (f"z{i}.png", os.urandom(MB), "image/png")})
        http.get(f"/gradio_api/file=http://{PROBE_HOST}/{i}")
    grown, held = server.rss() - baseline, folder_mb(folder)
    print(f"after the hostile requests: RSS {grown:+.1f} MB, upload folder {held:.1f} MB")
    assert grown < 50
    assert held < 50
    assert http.get("/config").status_code == 200        # and it still serves
    assert http.get("/gradio_api/info").json()["named_endpoints"]
    assert server.looked_up() == [] and server.proc.poll() is None


def test_empty_uploads_cannot_grow_the_ledger_without_bound():
    # Each upload counts at least request_cost bytes, so a flood of empty uploads fills the
    # client's allowance like real ones and the ledger stays at total_bytes / request_cost entries.
    from cnnlstm_edu.app.guard import UploadLedger, UploadLimits

    ledger = UploadLedger(UploadLimits(client_bytes=10 * 4096, total_bytes=20 * 4096))
    answers = [ledger.reserve("10.0.0.9", 0) for _ in range(1000)]
    assert answers[:10] == [None] * 10
    assert all(a and "at most" in a for a in answers[10:])
    assert len(ledger._entries) == 10 and ledger.held() == 10 * 4096
