"""Serving the app: the process-wide settings, the request guard, ``launch`` and ``main``.

Importing this module changes nothing. :func:`configure` applies what a server process needs
(no telemetry, PIL's limit on decoded images, gradio's image cache written atomically) and
:func:`launch` calls it; so does ``main()``, which is ``python app.py`` and
``python -m cnnlstm_edu.app``. Checkpoint folders of tabs that never closed are removed when
the server stops, and any left by a server that was killed are removed when the next starts.

    python app.py                      # http://127.0.0.1:7860
    python -m cnnlstm_edu.app --port 8000 --host 0.0.0.0 --max-runs 8
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import tempfile
import threading
from pathlib import Path

import gradio as gr

__all__ = ["CSS", "DEFAULT_PORT", "MAX_SESSIONS", "MAX_UPLOAD", "THEME", "atomic_image_cache", "configure",
           "launch", "main"]

DEFAULT_PORT = 7860
MAX_SESSIONS = 1000  # tabs whose state gradio keeps (its default, 10,000, holds a page copy each)
MAX_UPLOAD = "2mb"   # per file; per request, per client and overall: guard.UploadLimits
MAX_IMAGE_PIXELS = 4096 * 1024  # PIL refuses to decode more than twice this ("decompression bomb")
CSS = """
.pixelated img { image-rendering: pixelated; }
#status { min-height: 3em; }
"""


THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="blue")


def configure() -> None:
    """The process-wide settings a server needs; idempotent. ``launch`` and ``main`` call it."""
    from PIL import Image

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    atomic_image_cache()


def atomic_image_cache() -> None:
    """Make gradio write the images it caches atomically (idempotent).

    gradio names a cached image after the hash of its bytes and writes it in place: truncate, then
    write. Two tabs showing the same picture at the same moment (the same test digit among the
    mistakes, or the same untrained model's activations: every run starts from seed 0) write the
    same file, and a browser fetching it in between gets a truncated image. With 8 tabs training
    at once it happened in tests/test_classroom.py. Written under a temporary name and renamed
    into place, a reader sees a whole file, old or new, never half of one.
    """
    from gradio import processing_utils as pu

    if getattr(pu.save_pil_to_cache, "atomic", False) or not hasattr(pu, "encode_pil_to_bytes"):
        return

    def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        data = pu.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / pu.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        path = (folder / f"{name}.{format}").resolve()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".partial-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return str(path)

    save_pil_to_cache.atomic = True
    pu.save_pil_to_cache = save_pil_to_cache


def launch(demo=None, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           upload_limits=None, **kwargs):
    """Serve ``demo`` (a fresh :func:`~.demo.build_demo` by default) with the app's theme and CSS.

    Binds ``host`` (loopback by default); ``port`` defaults to ``$GRADIO_SERVER_PORT`` or 7860;
    no public link unless ``share=True``. Safe defaults for a shared server: the request guard
    (:mod:`.guard`: no blob route, no URL inputs, uploads bounded by ``upload_limits``), files up
    to ``MAX_UPLOAD``, ``MAX_SESSIONS`` tabs' state kept, no server-side rendering process, no
    monitoring page, no analytics, errors shown only as the app's own messages. Extra keyword
    arguments go to ``Blocks.launch`` (``prevent_thread_lock=True`` returns at once, for tests).
    """
    from starlette.middleware import Middleware

    from .demo import build_demo
    from .guard import RequestGuard, UploadLimits
    from .session import remove_own_checkpoints, remove_stale_checkpoints

    configure()
    remove_stale_checkpoints()
    demo = demo or build_demo()
    if port is None:
        port = int(os.environ.get("GRADIO_SERVER_PORT", DEFAULT_PORT))
    guard = Middleware(RequestGuard, limits=upload_limits or UploadLimits())
    options = dict(max_file_size=MAX_UPLOAD, state_session_capacity=MAX_SESSIONS, ssr_mode=False,
                   enable_monitoring=False, show_error=False, app_kwargs={"middleware": [guard]})
    options.update(kwargs)
    demo.launch(server_name=host, server_port=port, share=share, theme=THEME, css=CSS, **options)
    sessions = getattr(demo, "sessions", None)
    if sessions is not None:
        atexit.register(sessions.close_all)            # tabs that never closed: runs stopped
    atexit.register(remove_own_checkpoints)            # and their checkpoint folders removed
    return demo


def _parser():
    from .demo import MAX_MODELS, MAX_QUEUE, MAX_RUNS

    parser = argparse.ArgumentParser(prog="python app.py", description="Serve the cnnlstm-edu Gradio app.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to bind (default $GRADIO_SERVER_NAME or 127.0.0.1: this machine "
                             "only; 0.0.0.0: the network)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port (default $GRADIO_SERVER_PORT or {DEFAULT_PORT})")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--max-runs", type=int, default=MAX_RUNS,
                        help=f"trainings at once, across tabs; more wait in the queue (default {MAX_RUNS})")
    parser.add_argument("--max-queue", type=int, default=MAX_QUEUE,
                        help=f"events that may wait in the queue; more are refused (default {MAX_QUEUE})")
    parser.add_argument("--max-models", type=int, default=None,
                        help=f"models kept in memory across tabs (default {MAX_MODELS}, or --max-runs if "
                             "larger); the least recently used idle ones are freed")
    return parser


def main(argv: list[str] | None = None) -> int:
    configure()
    from .demo import MAX_MODELS, build_demo
    from .training import device_label, warm_up

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        demo = build_demo(device=args.device, max_runs=args.max_runs, max_queue=args.max_queue,
                          max_models=args.max_models or max(MAX_MODELS, args.max_runs))
        device_label(args.device)                    # a bad --device fails here, in one line
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Load MNIST, cut it into quadrants and take one training step now, while the server starts,
    # so that the first click on Train shows its first curve point within a second or two.
    threading.Thread(target=warm_up, kwargs={"device": args.device}, daemon=True).start()
    launch(demo, host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
