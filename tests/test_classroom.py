"""The app under a classroom: many tabs training at once, on loopback, with faults injected.

The app is launched in this process on 127.0.0.1 and a free port, and driven by gradio_client,
one ``Client`` per tab (each has its own session). Runs are tiny (a few steps, the end scored on
200 test digits), so the file stays well under a minute on a 2-core CPU. ``benchmarks/classroom.py``
measures the same things with timings and memory.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch

from cnnlstm_edu import load_checkpoint
from cnnlstm_edu.app import build_demo, launch
from cnnlstm_edu.app import training
from cnnlstm_edu.app.training import quadrant_data

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SESSIONS_AT_ONCE = 8
_served = []                                     # the launched app, once the fixture has made it


def SESSIONS():
    """The served app's session registry (build_demo makes it: demo.sessions)."""
    return _served[-1].sessions


@pytest.fixture(scope="module")
def app(free_port):
    for order in ("1234", "4321"):                 # built once, so the runs measure training
        quadrant_data(order).train_for(torch.device("cpu"))
    demo = launch(build_demo(device="cpu", final_test=200, max_runs=SESSIONS_AT_ONCE + 2, max_models=16),
                  port=free_port(), prevent_thread_lock=True, quiet=True)
    _served.append(demo)
    try:
        yield demo
    finally:
        demo.close()


def client(demo):
    """One tab. Files (images, the checkpoint) stay on the server unless asked for: fetching every
    image of every update for 8 tabs would triple the test's time (benchmarks/classroom.py does)."""
    from gradio_client import Client

    return Client(demo.local_url, verbose=False, download_files=False)


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port``, from /proc/net/tcp (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:          # 0A: LISTEN
                found.add(address)
    return found


@contextmanager
def open_tab(demo, session_hash: str):
    """What a browser tab holds open: the heartbeat stream. Leaving the block closes the tab."""
    with httpx.Client(timeout=None) as http:
        with http.stream("GET", f"{demo.local_url}gradio_api/heartbeat/{session_hash}") as r:
            assert r.status_code == 200
            lines = r.iter_lines()          # kept: a dropped iterator would close the stream at once
            assert next(lines).startswith("data: ALIVE")
            yield


class Watch:
    """Samples, every few milliseconds, how many of some sessions are training at that moment."""

    def __init__(self, hashes):
        self.hashes, self.most, self._done = list(hashes), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._done.is_set():
            sessions = [SESSIONS().get(h) for h in self.hashes]
            self.most = max(self.most, sum(s is not None and s.running for s in sessions))
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def download(button: dict, folder: Path) -> Path:
    """Fetch the file the "download model" button offers, over HTTP, as the browser would."""
    data = button["value"]
    path = folder / data["orig_name"]
    response = httpx.get(data["url"], timeout=30)
    assert response.status_code == 200
    path.write_bytes(response.content)
    return path


def run_jobs(jobs: dict, timeout: float = 120) -> dict:
    """Wait for every job; returns each job's list of outputs."""
    outputs = {}
    for name, job in jobs.items():
        job.result(timeout=timeout)
        outputs[name] = job.outputs()
    return outputs


def test_the_app_binds_loopback_only(app):
    assert app.local_url.startswith("http://127.0.0.1:") and app.share_url is None
    port = int(app.local_url.rstrip("/").rsplit(":", 1)[1])
    addresses = listening_addresses(port)
    if not addresses:
        pytest.skip("no /proc/net/tcp here")
    assert addresses == {"0100007F"}                                   # 127.0.0.1, nothing else


def test_eight_tabs_train_at_once_each_gets_its_own_result_and_stop_works_under_load(app, tmp_path):
    tabs = [client(app) for _ in range(SESSIONS_AT_ONCE)]
    stopper = client(app)
    hidden = {i: 16 + i for i in range(SESSIONS_AT_ONCE)}
    order = {i: ("1234", "4321")[i % 2] for i in range(SESSIONS_AT_ONCE)}
    with Watch([c.session_hash for c in tabs]) as watch:
        long_run = stopper.submit("CNN-LSTM", "1234", 8, 4e-3, 64, "seconds", 120, api_name="/train")
        jobs = {i: c.submit("CNN-LSTM", order[i], hidden[i], 4e-3, 64, "epochs", 0.005, api_name="/train")
                for i, c in enumerate(tabs)}
        while not long_run.outputs():
            time.sleep(0.02)
        busy = sum(s.running for s in map(SESSIONS().get, (c.session_hash for c in tabs)) if s is not None)
        assert "Stopping" in stopper.predict(api_name="/stop")           # while the others train
        outputs = run_jobs(jobs)
        long_run.result(timeout=60)
    assert watch.most == SESSIONS_AT_ONCE                              # all eight were training at one moment
    stopped = long_run.outputs()[-1][0]
    assert "Stopped" in stopped and busy >= 1, (stopped, busy)         # Stop acted while others ran
    for i, c in enumerate(tabs):
        assert len(outputs[i]) >= 2 and all(len(o) == 11 for o in outputs[i]), outputs[i]
        first, *_, last = outputs[i]
        status, final, try_order, button = last[0], last[6], first[-2], last[-1]
        assert "Done" in status and "Test accuracy" in final and try_order == order[i]
        session = SESSIONS().get(c.session_hash)
        assert session.model.lstm.hidden_size == hidden[i] and session.settings.order == order[i]
        path = download(button, tmp_path)
        model, info = load_checkpoint(path)                            # its own model, downloaded
        assert model.lstm.hidden_size == hidden[i] and info["order"] == order[i]
        assert path.name.startswith(f"cnn_lstm-h{hidden[i]}-order{order[i]}-acc")

    # Closing the tabs frees their models: memory goes back to what it was.
    for c in tabs + [stopper]:
        with open_tab(app, c.session_hash):
            pass
    deadline = time.monotonic() + 30
    while any(SESSIONS().get(c.session_hash) is not None for c in tabs + [stopper]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [SESSIONS().get(c.session_hash) for c in tabs + [stopper]] == [None] * (len(tabs) + 1)


def test_faults_in_one_tab_leave_the_others_training(app, monkeypatch):
    # Injected: an exception in step 2 (hidden 13), a GPU out of memory in step 2 (hidden 14), a
    # tab closed in the middle of its run (hidden 15); hidden 12 is a run with no fault.
    real_fit = training.fit

    def fit(model, *args, **kwargs):
        faults = {13: RuntimeError("injected fault in step 2"),
                  14: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")}
        fault = faults.get(model.config.hidden_size)
        for i, event in enumerate(real_fit(model, *args, **kwargs)):
            if fault is not None and i == 2:
                raise fault
            yield event

    monkeypatch.setattr(training, "fit", fit)
    tabs = {h: client(app) for h in (12, 13, 14, 15)}
    budgets = {12: ("epochs", 0.005), 13: ("seconds", 60), 14: ("seconds", 60), 15: ("seconds", 120)}
    with open_tab(app, tabs[15].session_hash):
        jobs = {h: c.submit("CNN-LSTM", "1234", h, 4e-3, 64, *budgets[h], api_name="/train")
                for h, c in tabs.items()}
        while not jobs[15].outputs():
            time.sleep(0.02)
        closing = SESSIONS().get(tabs[15].session_hash)
        assert closing.running
    outputs = run_jobs(jobs)
    assert "Done" in outputs[12][-1][0]
    assert "Training failed:** RuntimeError: injected fault in step 2" in outputs[13][-1][0]
    assert "Out of memory" in outputs[14][-1][0] and "smaller batch size" in outputs[14][-1][0]
    for h in (13, 14):
        session = SESSIONS().get(tabs[h].session_hash)
        assert session.model is None and not session.running            # freed, and free to train again
    assert closing.closed and closing.model is None and not closing.running
    assert "Done" not in outputs[15][-1][0]                             # its run ended when the tab went
    # The app still serves, failed tabs included.
    monkeypatch.undo()
    assert "Done" in tabs[13].predict("CNN-LSTM", "1234", 13, 4e-3, 64, "epochs", 0.005, api_name="/train")[0]


def test_paths_from_users_are_never_read_and_uploads_are_capped(app, tmp_path):
    url = app.local_url
    secret = tmp_path / "secret.png"                        # a file on the server no user uploaded
    secret.write_bytes(b"\x89PNG not for you")
    data = {"path": str(secret), "meta": {"_type": "gradio.FileData"}}
    r = httpx.post(f"{url}gradio_api/call/try_sketch",
                   json={"data": [{"background": data, "layers": [], "composite": data}, "1234"]})
    result = httpx.get(f"{url}gradio_api/call/try_sketch/{r.json()['event_id']}", timeout=60).text
    assert "event: error" in result and "not for you" not in result
    for path in (secret, "/etc/passwd"):
        served = httpx.get(f"{url}gradio_api/file={path}")
        assert served.status_code == 403 and b"not for you" not in served.content
    too_big = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", bytes(3 * 2**20), "image/png")})
    assert too_big.status_code == 413                       # MAX_UPLOAD is 2 MB
    small = httpx.post(f"{url}gradio_api/upload", files={"files": ("ok.png", b"\x89PNG", "image/png")})
    assert small.status_code == 200


def test_cached_images_are_written_whole_even_when_two_tabs_write_the_same_one(app, tmp_path):
    from gradio import processing_utils
    from PIL import Image

    assert getattr(processing_utils.save_pil_to_cache, "atomic", False)
    image = Image.new("RGB", (28, 28), "white")
    paths = {processing_utils.save_pil_to_cache(image, str(tmp_path), format="png") for _ in range(3)}
    (path,) = paths                                          # one content, one file
    assert Path(path).read_bytes() == processing_utils.encode_pil_to_bytes(image, "png")
    assert [p.name for p in Path(path).parent.iterdir()] == ["image.png"]   # no partial file left
