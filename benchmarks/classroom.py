"""The app under a classroom: many tabs training at once, latency and memory, faults injected.

The app is served by a child process (this file with ``--serve``) on 127.0.0.1 and a free port,
exactly as ``app.py`` serves it, plus two things a classroom server does not have: faults keyed
to the hidden size (13: an exception in the third event of ``fit``; 14: a simulated
``torch.cuda.OutOfMemoryError`` there), and an API-only ``/stats`` endpoint (sessions, models
in memory). Each tab is a ``gradio_client.Client`` that downloads every image of every update,
as a browser does, and holds the heartbeat stream a browser tab holds (closing it is closing the
tab).

1. **Sessions at once**: N tabs press Train together (CNN-LSTM, the defaults, a time budget),
   once with ``--max-runs N`` (all train at once) and once with the default ``--max-runs 2``
   (the rest wait in the queue). Per tab: seconds from the click to the first update, to the
   first curve point, and to the final update; steps and test accuracy; the server's resident
   memory (RSS) before, at its peak during, and after the tabs closed.
2. **Faults**, with other tabs training: an exception mid-run, a GPU out of memory (simulated),
   a tab closed mid-run, Stop pressed under load; each outcome as the tab saw it.
3. **Bad inputs**: ``tests/test_properties.py`` run with a counter: inputs tried per API and
   how each ended (the identity held, or which clear error).

    python benchmarks/classroom.py                 # writes benchmarks/classroom.md
    python benchmarks/classroom.py --quick         # 2 tabs, 2 s runs, prints, writes nothing
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common import hardware  # noqa: E402

FAULT_HIDDEN = {"exception": 13, "oom": 14}


# --- the server (child process) ------------------------------------------------------------------


def serve(port: int, max_runs: int, device: str, final_test: int | None) -> None:
    import torch

    import gradio as gr
    from cnnlstm_edu.app import build_demo, launch
    from cnnlstm_edu.app import training
    from cnnlstm_edu.app.training import warm_up

    real_fit = training.fit

    def fit(model, *args, **kwargs):
        hidden = getattr(model.config, "hidden_size", None)
        for i, event in enumerate(real_fit(model, *args, **kwargs)):
            if i == 2 and hidden == FAULT_HIDDEN["exception"]:
                raise RuntimeError("injected fault in the third event of fit()")
            if i == 2 and hidden == FAULT_HIDDEN["oom"]:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB "
                                                  "(simulated by benchmarks/classroom.py)")
            yield event

    training.fit = fit
    warm_up(device=device)                       # what app.py does while its server starts
    demo = build_demo(device=device, max_runs=max_runs, final_test=final_test)

    def stats() -> str:
        sessions = demo.sessions.sessions()
        return json.dumps({"sessions": len(sessions), "models": sum(s.model is not None for s in sessions),
                           "running": sum(s.running for s in sessions)})

    with demo:
        gr.api(stats, api_name="stats")
    launch(demo, port=port, quiet=True)          # blocks: the parent ends this process


# --- the classroom (parent process) --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, max_runs: int, device: str, final_test: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        cmd = [sys.executable, __file__, "--serve", "--port", str(self.port), "--max-runs", str(max_runs),
               "--device", device] + (["--final-test", str(final_test)] if final_test else [])
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        import httpx

        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"the app did not start:\n{self.log.read().decode()[-3000:]}")
            time.sleep(0.5)
        self.peak = 0.0
        self._sampling = None

    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    def stats(self) -> dict:
        return json.loads(self.client().predict(api_name="/stats"))

    def client(self, download_files: bool = True):
        from gradio_client import Client

        return Client(self.url, verbose=False, download_files=download_files)

    def sample(self):
        """Start sampling the server's RSS every 0.1 s; returns a function that stops and gives the peak."""
        done = threading.Event()
        peak = [self.rss()]

        def run():
            while not done.is_set():
                peak[0] = max(peak[0], self.rss())
                time.sleep(0.1)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def stop() -> float:
            done.set()
            thread.join()
            return peak[0]

        return stop

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Tab:
    """One browser tab: a gradio_client session plus the heartbeat stream a tab holds open."""

    def __init__(self, server: Server) -> None:
        import httpx

        self.client = server.client()
        self._http = httpx.Client(timeout=None)
        self._stream = self._http.stream("GET", f"{server.url}gradio_api/heartbeat/{self.client.session_hash}")
        response = self._stream.__enter__()
        self._lines = response.iter_lines()      # kept: dropping it would close the stream
        next(self._lines)
        self.times: dict[str, float] = {}
        self.outputs: list = []
        self.error: str | None = None

    def train(self, hidden: int, budget_kind: str, budget: float, batch: int = 128, order: str = "1234"):
        """Press Train; a thread follows the updates and timestamps them."""
        t0 = time.perf_counter()
        self.times = {"click": t0}
        job = self.client.submit("CNN-LSTM", order, hidden, 4e-3, batch, budget_kind, budget, api_name="/train")

        def follow():
            try:
                for out in job:
                    now = time.perf_counter() - t0
                    self.outputs.append(out)
                    self.times.setdefault("first update", now)
                    if _has_point(out):
                        self.times.setdefault("first curve point", now)
                self.times["end"] = time.perf_counter() - t0
            except Exception as e:  # a failed download, a dropped stream: recorded, not hidden
                self.error = f"{type(e).__name__}: {e}"
                self.times["end"] = time.perf_counter() - t0

        self.thread = threading.Thread(target=follow, daemon=True)
        self.thread.start()
        return self

    def wait(self, timeout: float = 600) -> None:
        self.thread.join(timeout)

    @property
    def status(self) -> str:
        return self.outputs[-1][0] if self.outputs else ""

    def close(self) -> None:
        self._stream.__exit__(None, None, None)
        self._http.close()


def _has_point(out) -> bool:
    """An update of the /train endpoint (status, loss, accuracy, ...) with a point on the curves."""
    accuracy = out[2]
    return isinstance(accuracy, dict) and bool(accuracy.get("data"))


def _steps_and_accuracy(status: str) -> tuple[int | None, float | None]:
    steps = re.search(r"([\d,]+) steps", status)
    acc = re.search(r"test accuracy \*\*([\d.]+)%", status)
    return (int(steps.group(1).replace(",", "")) if steps else None,
            float(acc.group(1)) / 100 if acc else None)


def wait_until(predicate, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def sessions_at_once(n: int, max_runs: int, budget: float, device: str, final_test: int | None) -> dict:
    server = Server(max_runs, device, final_test)
    try:
        start_rss = server.rss()
        tabs = [Tab(server) for _ in range(n)]
        before = server.rss()
        stop_sampling = server.sample()
        load0 = os.getloadavg()[0]
        for tab in tabs:
            tab.train(hidden=128, budget_kind="seconds", budget=budget)
        for tab in tabs:
            tab.wait()
        peak = stop_sampling()
        load1 = os.getloadavg()[0]
        models_during = server.stats()["models"]
        for tab in tabs:
            tab.close()
        freed = wait_until(lambda: server.stats()["models"] == 0)
        after = server.rss()
        rows = []
        for tab in tabs:
            steps, acc = _steps_and_accuracy(tab.status)
            rows.append({**{k: v for k, v in tab.times.items() if k != "click"}, "steps": steps,
                         "test_acc": acc, "done": "Done" in tab.status, "error": tab.error})
        return {"sessions": n, "max_runs": max_runs, "budget": budget, "rows": rows,
                "rss_start": start_rss, "rss_before": before, "rss_peak": peak, "rss_after": after,
                "models_during": models_during, "models_freed": freed, "load": (load0, load1)}
    finally:
        server.close()


def faults(device: str, final_test: int | None, budget: float) -> dict:
    server = Server(8, device, final_test)
    outcomes = []
    try:
        before = server.rss()
        # Three tabs keep training through all the faults (three times the budget).
        busy = [Tab(server).train(hidden=128, budget_kind="seconds", budget=3 * budget) for _ in range(3)]
        wait_until(lambda: all("first curve point" in t.times for t in busy), 120)

        exc = Tab(server).train(hidden=FAULT_HIDDEN["exception"], budget_kind="seconds", budget=60)
        oom = Tab(server).train(hidden=FAULT_HIDDEN["oom"], budget_kind="seconds", budget=60)
        closing = Tab(server).train(hidden=15, budget_kind="seconds", budget=120)
        stopped = Tab(server).train(hidden=16, budget_kind="seconds", budget=120)
        wait_until(lambda: "first curve point" in closing.times and "first curve point" in stopped.times, 120)
        models_before_close = server.stats()["models"]
        t_close = time.perf_counter()
        closing.close()
        closed = wait_until(lambda: server.stats()["models"] == models_before_close - 1, 30)
        close_seconds = time.perf_counter() - t_close
        running_at_stop = server.stats()["running"]
        t_stop = time.perf_counter()
        stopped.client.predict(api_name="/stop")
        stopped.wait()
        stop_seconds = time.perf_counter() - t_stop
        for tab in (exc, oom, *busy):
            tab.wait()
        first_line = lambda s: s.replace("\n", " ")[:150]  # noqa: E731
        others = f"{sum('Done' in t.status for t in busy)}/{len(busy)} tabs training meanwhile finished 'Done'"
        outcomes = [
            {"fault": "exception raised in fit() (3rd event)", "tab": first_line(exc.status), "others": others},
            {"fault": "torch.cuda.OutOfMemoryError raised in fit() (simulated)", "tab": first_line(oom.status),
             "others": others},
            {"fault": "tab closed mid-run (heartbeat stream closed)",
             "tab": f"run ended and its model freed {close_seconds:.1f} s after the close" if closed
                    else "model NOT freed within 30 s", "others": others},
            {"fault": f"Stop pressed while {running_at_stop - 1} other tabs trained",
             "tab": f"{first_line(stopped.status)} (final update {stop_seconds:.1f} s after Stop)",
             "others": others},
        ]
        errors = [t.error for t in (exc, oom, stopped, *busy) if t.error]
        for tab in (exc, oom, stopped, *busy):
            tab.close()
        wait_until(lambda: server.stats()["models"] == 0)
        after = server.rss()
        return {"outcomes": outcomes, "client_errors": errors, "rss_before": before, "rss_after": after,
                "server_alive": server.proc.poll() is None}
    finally:
        server.close()


def property_counts() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "counts.json"
        env = {**os.environ, "CNNLSTM_EDU_PROPERTY_COUNTS": str(path), "KERAS_BACKEND": "torch"}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "tests/test_properties.py"], cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"tests/test_properties.py failed:\n{proc.stdout[-3000:]}")
        return json.loads(path.read_text())


# --- the report ----------------------------------------------------------------------------------


def _stat(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def report(runs: list[dict], fault_run: dict, counts: list[dict], device: str, load: tuple, note: str) -> str:
    lines = ["# The app under a classroom", "",
             "Measured by `python benchmarks/classroom.py` (the app in a child process on 127.0.0.1, "
             "every tab a `gradio_client` session that downloads each image, as a browser does, and "
             "holds the heartbeat stream a browser tab holds). CNN-LSTM with the page's defaults "
             "(hidden 128, batch 128), a time budget per tab; the end of each run is scored on "
             f"{'all 10,000' if runs and runs[0].get('final_test') is None else runs[0].get('final_test')} test digits.",
             "", *hardware(device),
             f"- load average when the benchmark started: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min), "
             f"{load[2]:.2f} (15 min), on {os.cpu_count()} cores" + (f"; {note}" if note else ""), ""]
    lines += ["## Sessions at once", "",
              "Seconds from the click, median / slowest tab. Memory is the server's resident set "
              "(RSS): at start, with the tabs open (data loaded, one warm-up step taken), at its "
              "peak while they trained, and after they closed.", "",
              "| tabs | max runs | budget | first update | first curve point | final update | steps per tab (min-max) | "
              "all Done | RSS start / open / peak / after (MB) | models freed | load avg (1 min) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        rows = run["rows"]
        steps = [r["steps"] for r in rows if r["steps"] is not None]
        lines.append(
            f"| {run['sessions']} | {run['max_runs']} | {run['budget']:g} s | {_stat(rows, 'first update')} | "
            f"{_stat(rows, 'first curve point')} | {_stat(rows, 'end')} | "
            f"{min(steps) if steps else '-'}-{max(steps) if steps else '-'} | "
            f"{sum(r['done'] for r in rows)}/{len(rows)} | {run['rss_start']:.0f} / {run['rss_before']:.0f} / "
            f"{run['rss_peak']:.0f} / {run['rss_after']:.0f} | "
            f"{'all' if run['models_freed'] else 'NOT all'} ({run['models_during']} held) | "
            f"{run['load'][0]:.1f} -> {run['load'][1]:.1f} |")
        errors = [r["error"] for r in rows if r["error"]]
        if errors:
            lines.append(f"|  | client errors: {'; '.join(errors[:3])} |||||||||")
    lines += ["", "With `--max-runs` equal to the tabs, every tab trains at once and each gets its "
              "share of the cores (fewer steps in its budget); with the default 2, a tab waits in "
              "the queue for a place and then trains at full speed: the first update comes later. "
              "The final update comes after the run is scored on the test set, and every tab's "
              "images are downloaded. The load average is the machine's at the start and the end of "
              "the row: the tabs' own training adds to it (each run uses torch's threads), and on a "
              "shared machine so does other work; above the core count, every figure is slower than "
              "on a quiet machine. RSS 'after' is measured once the closed tabs' models are freed: "
              "what stays above 'open' is memory the allocator and torch keep for reuse by the next "
              "runs (the app calls malloc_trim when a tab closes; that returns part of it).", ""]
    lines += ["## Faults injected", "",
              f"Server RSS {fault_run['rss_before']:.0f} MB before, {fault_run['rss_after']:.0f} MB after; "
              f"the server {'kept serving' if fault_run['server_alive'] else 'DIED'} throughout.", "",
              "| fault | what the tab saw | the others |", "|---|---|---|"]
    for o in fault_run["outcomes"]:
        lines.append(f"| {o['fault']} | {o['tab']} | {o['others']} |")
    if fault_run["client_errors"]:
        lines.append(f"\nClient-side errors: {'; '.join(fault_run['client_errors'])}")
    total = sum(c["examples"] for c in counts)
    bad = sum(c["examples"] for c in counts if c["outcome"].startswith("error"))
    lines += ["", "## Bad inputs tried by the property tests", "",
              f"`tests/test_properties.py` (hypothesis, one run): {total} inputs, {bad} of them bad. Each "
              "bad one had to raise a ValueError/TypeError naming the expected axes and the shape "
              "received; none escaped as another error (the run passed).", "",
              "| API | outcome | inputs |", "|---|---|---|"]
    for c in counts:
        lines.append(f"| {c['api']} | {c['outcome']} | {c['examples']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="tabs training at once")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of training per tab")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--final-test", type=int, default=None, help="score each run on this many test digits")
    parser.add_argument("--out", default=str(HERE / "classroom.md"))
    parser.add_argument("--quick", action="store_true", help="2 tabs, 2 s runs, faults; print, write nothing")
    parser.add_argument("--note", default="", help="a line for the report (what else ran on the machine)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-runs", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.port, args.max_runs, args.device, args.final_test)
        return 0

    load = os.getloadavg()
    if args.quick:
        n, budget, final_test = 2, 2.0, 500
        runs = [sessions_at_once(n, n, budget, args.device, final_test)]
        fault_run = faults(args.device, final_test, budget)
        counts = []
    else:
        n, budget, final_test = args.sessions, args.budget, args.final_test
        runs = [sessions_at_once(n, n, budget, args.device, final_test),
                sessions_at_once(n, 2, budget, args.device, final_test)]
        fault_run = faults(args.device, final_test, budget)
        counts = property_counts()
    for run in runs:
        run["final_test"] = final_test
    from cnnlstm_edu.train import resolve_device

    text = report(runs, fault_run, counts, str(resolve_device(args.device)), load, args.note)
    print(text)
    if not args.quick:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
