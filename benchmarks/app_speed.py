"""The app's two figures: how soon a click on Train shows something, and what watching costs.

1. **Time to first view**: from starting a run to the first update that holds a curve point
   *and* the activation images, measured three ways:
   - ``function``: the Train button's function (``cnnlstm_edu.app.train_tab.train``) called directly;
   - ``gradio_client``: the ``/train`` endpoint of a launched app, images downloaded;
   - ``browser``: chromium clicks **Train** and waits until the accuracy line and the activation
     image are on the page (skipped without /usr/bin/chromium or with ``--no-browser``).
   The data set is loaded (and one step taken) before the clock starts, as ``app.py`` does
   while its server starts.
2. **Throughput**: training samples per second of wall time, same settings (CNN-LSTM, batch
   128, lr 4e-3, seed 0, a time budget), for ``fit()`` alone (what ``python -m cnnlstm_edu
   train`` runs, without its epoch-end test passes) and for a run started and watched in the
   browser (every refresh: the probe digit, a test slice now and then, images encoded, sent and
   drawn); without chromium a ``gradio_client`` in the same process watches instead. Both
   spans run from the call to the last training step; the final evaluation is outside both.

    python benchmarks/app_speed.py                  # writes benchmarks/app_speed.md
    python benchmarks/app_speed.py --quick          # 2 s runs, no browser, writes nothing
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import hardware  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _has_view(out) -> bool:
    """An output tuple of the Train button with a curve point and the activation images."""
    accuracy, activations = out[3], out[4]
    data = accuracy.get("data") if isinstance(accuracy, dict) else getattr(accuracy, "shape", (0,))[0]
    return bool(data) and activations is not None and not (isinstance(activations, dict) and
                                                           activations.get("__type__") == "update")


def first_view_function(final_test: int) -> float:
    from cnnlstm_edu.app.session import SessionRegistry
    from cnnlstm_edu.app.train_tab import train

    gen = train(SessionRegistry(), None, "CNN-LSTM", "1234", 128, 4e-3, 128, "seconds", 60,
                    options={"device": "auto", "final_test": final_test})
    t0 = time.perf_counter()
    session = None
    for out in gen:
        session = out[0]
        if _has_view(out):
            seconds = time.perf_counter() - t0
            break
    session.stop.set()
    for _ in gen:                        # let the run end (it scores final_test digits)
        pass
    return seconds


def stop_latency(final_test: int) -> tuple[float, float]:
    """Stop pressed 2 s into a run, as the page does it (another thread): seconds until training
    has ended (the last step), and until the final update (after scoring ``final_test`` digits)."""
    import threading

    from cnnlstm_edu.app.training import Session, TrainSettings, train_updates

    session = Session()
    updates = []
    runner = threading.Thread(target=lambda: updates.extend(
        train_updates(session, TrainSettings(seconds=60, final_test=final_test))))
    runner.start()
    time.sleep(2.0)
    t_stop = time.perf_counter()
    session.stop.set()
    runner.join()
    t_end = time.perf_counter()
    return updates[-1].timings["training_ended_at"] - t_stop, t_end - t_stop


def first_view_client(demo) -> float:
    from gradio_client import Client

    client = Client(demo.local_url, verbose=False)
    t0 = time.perf_counter()
    job = client.submit("CNN-LSTM", "1234", 128, 4e-3, 128, "seconds", 60, api_name="/train")
    seconds = None
    while seconds is None:
        # The API's outputs leave out the gr.State: accuracy is [2], the activations image [3].
        for out in job.outputs():
            if isinstance(out[2], dict) and out[2].get("data") and isinstance(out[3], str):
                seconds = time.perf_counter() - t0
                break
        if seconds is None and job.done():
            raise RuntimeError(f"the run ended without a curve point and images: {job.outputs()[-1:]}")
        time.sleep(0.01)
    client.predict(api_name="/stop")
    job.result(timeout=120)
    return seconds


def first_view_browser(demo) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(demo.local_url)
        page.wait_for_selector("#train-button", timeout=60_000)
        page.get_by_label("how long").fill("60")
        t0 = time.perf_counter()
        page.click("#train-button")
        page.wait_for_function(
            """() => document.querySelector('#activations img') &&
                     [...document.querySelectorAll('#accuracy-plot svg .mark-line path')]
                       .some(p => p.getAttribute('stroke'))""", timeout=120_000, polling=10)
        seconds = time.perf_counter() - t0
        page.click("#stop-button")
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('Stopped')",
                               timeout=120_000)
        browser.close()
    return seconds


def throughput_fit(budget: float) -> dict:
    import torch

    from cnnlstm_edu.app.training import quadrant_data
    from cnnlstm_edu.models import build_model
    from cnnlstm_edu.train import fit, resolve_device

    data = quadrant_data("1234")
    t0 = time.perf_counter()                     # as in the app: the model is built inside the span
    torch.manual_seed(0)
    model = build_model("cnn_lstm")
    device = resolve_device("auto")
    # The same data the app trains on (on a CPU: converted to float once, at warm-up).
    for event in fit(model, (data.train_for(device), data.train_y), None, time_budget=budget,
                     batch_size=128, lr=4e-3, device=device, seed=0, eval_every_epoch=False):
        pass
    wall = time.perf_counter() - t0
    return {"steps": event.step, "train_s": event.seconds, "wall_s": wall,
            "samples_per_s": event.step * 128 / wall, "device": event.device}


def _browser():
    from playwright.sync_api import sync_playwright

    p = sync_playwright().start()
    browser = p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])
    return p, browser


def throughput_app(demo, budget: float, via: str) -> dict:
    """One run with the page (``via="browser"``) or a ``gradio_client`` (same process) watching."""
    seen = {id(s.result) for s in demo.sessions.sessions()}
    if via == "browser":
        p, browser = _browser()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(demo.local_url)
        page.wait_for_selector("#train-button", timeout=60_000)
        page.get_by_label("how long").fill(f"{budget:g}")
        page.click("#train-button")
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('Done')",
                               timeout=budget * 20_000 + 120_000, polling=200)
        result = _new_result(demo, seen)     # before the tab closes: closing frees its session
        browser.close()
        p.stop()
    else:
        from gradio_client import Client

        client = Client(demo.local_url, verbose=False)
        job = client.submit("CNN-LSTM", "1234", 128, 4e-3, 128, "seconds", budget, api_name="/train")
        job.result(timeout=budget * 20 + 120)
        result = _new_result(demo, seen)
    # wall_seconds runs from the click to the last step: the final evaluation is not in it.
    return {"steps": result.steps, "train_s": result.train_seconds, "wall_s": result.wall_seconds,
            "samples_per_s": result.samples_per_second, "via": via}


def _new_result(demo, seen: set):
    return next(s.result for s in demo.sessions.sessions()
                if s.result is not None and id(s.result) not in seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=15.0, help="training seconds per throughput run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--out", default=str(HERE / "app_speed.md"))
    parser.add_argument("--quick", action="store_true", help="2 s runs, one repeat, no browser, write nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.budget, args.repeats, args.no_browser, args.out = 2.0, 1, True, None

    import torch

    from cnnlstm_edu.app import build_demo, launch
    from cnnlstm_edu.app.training import device_label, warm_up

    load_before = os.getloadavg()
    t = time.perf_counter()
    warm_up()                            # what app.py does while its server starts
    print(f"warm-up (data loaded, one step) in {time.perf_counter() - t:.2f} s, outside every figure below",
          flush=True)
    demo = launch(build_demo(final_test=1000), port=_free_port(), prevent_thread_lock=True, quiet=True)
    browser = not args.no_browser and Path(CHROMIUM).exists()
    first: dict[str, list[float]] = {"function": [], "gradio_client": [], "browser": []}
    fit_runs, app_runs, stops = [], [], []
    try:
        for k in range(args.repeats):
            first["function"].append(first_view_function(final_test=500))
            first["gradio_client"].append(first_view_client(demo))
            if browser:
                first["browser"].append(first_view_browser(demo))
            print(f"first view #{k}: " + ", ".join(f"{w} {v[-1]:.2f} s" for w, v in first.items() if v), flush=True)
            stops.append(stop_latency(final_test=500 if args.quick else 10000))
            print(f"stop #{k}: training ended {stops[-1][0]:.2f} s after Stop, final update after "
                  f"{stops[-1][1]:.2f} s", flush=True)
        for k in range(args.repeats):
            # Alternate, so that a change in the machine's load hits both sides alike.
            fit_runs.append(throughput_fit(args.budget))
            app_runs.append(throughput_app(demo, args.budget, "browser" if browser else "gradio_client"))
            print(f"throughput #{k}: fit {fit_runs[-1]['samples_per_s']:.0f} samples/s, "
                  f"app ({app_runs[-1]['via']}) {app_runs[-1]['samples_per_s']:.0f} samples/s", flush=True)
    finally:
        demo.close()
    load_after = os.getloadavg()

    med = {w: statistics.median(v) for w, v in first.items() if v}
    fit_sps = statistics.median(r["samples_per_s"] for r in fit_runs)
    app_sps = statistics.median(r["samples_per_s"] for r in app_runs)
    ratio = app_sps / fit_sps
    print(f"time to first curve point + images: " + ", ".join(f"{w} {v:.2f} s" for w, v in med.items()))
    print(f"throughput: app {app_sps:.0f} vs fit {fit_sps:.0f} samples/s = {ratio:.0%}")
    print(f"stop: training ended after {statistics.median(x for x, _ in stops):.2f} s (median)")
    if not args.out:
        return 0

    busy = max(load_before[0], load_after[0]) > 0.5 * (os.cpu_count() or 1)
    lines = [
        "# The app: time to first view, and training throughput while watching", "",
        "Written by `python benchmarks/app_speed.py` (see its docstring for what is timed). "
        f"Medians over {args.repeats} runs each.", "",
        *hardware(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
        f"- device the app trains on: {device_label()}",
        f"- load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        f"on {os.cpu_count()} cores" + (" -- **the machine was busy with other work during these runs; "
                                        "the absolute figures are pessimistic**" if busy else ""), "",
        "## Time from clicking Train to the first curve point and activation images", "",
        "Goal: at most 2 s on a CPU.", "",
        "| measured at | median s | runs (s) |", "|---|---|---|",
    ]
    for w, v in first.items():
        if v:
            lines.append(f"| {w} | {med[w]:.2f} | {', '.join(f'{x:.2f}' for x in v)} |")
    if not browser:
        lines.append("| browser | - | not run (no chromium, or --no-browser) |")
    lines += [
        "", "## Stop", "",
        "Stop pressed 2 s into a run (from another thread, as the page does): seconds until training "
        "has ended (the step under way finishes), and until the final update, which first scores the "
        "model on the 10,000 test digits (the app's default).", "",
        "| until | median s | runs (s) |", "|---|---|---|",
        f"| training ended | {statistics.median(x for x, _ in stops):.2f} | {', '.join(f'{x:.2f}' for x, _ in stops)} |",
        f"| final update | {statistics.median(y for _, y in stops):.2f} | {', '.join(f'{y:.2f}' for _, y in stops)} |",
    ]
    lines += [
        "", f"## Training throughput: in the app vs `fit()` alone ({args.budget:g} s budget)", "",
        "Goal: the app trains at least 80 % as fast.", "",
        "| run | steps | train s | wall s | in steps | samples / s (wall) |", "|---|---|---|---|---|---|",
    ]
    for name, runs in (("fit() alone", fit_runs), (f"app, watched by {app_runs[0]['via']}", app_runs)):
        for r in runs:
            lines.append(f"| {name} | {r['steps']} | {r['train_s']:.1f} | {r['wall_s']:.1f} | "
                         f"{r['train_s'] / r['wall_s']:.0%} | {r['samples_per_s']:.0f} |")
    lines += [
        "", f"Median: app **{app_sps:.0f}** samples/s vs fit() **{fit_sps:.0f}** samples/s: "
            f"**{ratio:.0%}**. Wall time runs from the call to the last training step (model build and "
            "the copy of the data set to the device included, the final test evaluation excluded), "
            "the same span on both sides. `in steps` is the share of that wall time spent in training "
            "steps (fit's own clock): it does not depend on how busy the machine is, whereas samples/s "
            f"does; in the app it is {statistics.median(r['train_s'] / r['wall_s'] for r in app_runs):.0%} "
            "(the probe digit, the test slice and the page updates take the rest; the browser drawing "
            "the page also competes with the steps for the cores).", "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
