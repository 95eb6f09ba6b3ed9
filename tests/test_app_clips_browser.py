"""The "Your clips" tab in a real browser (issue 16's done-when): upload the sample zip through the
page's file field, train a few seconds, see the per-frame activations and the belief after each
frame; then classify one clip. Debian's chromium driven by playwright, as tests/test_app_browser.py
does (gradio pages never reach "networkidle": wait for selectors).

``SAVE_SCREENSHOT=docs/app_clips.png TRAIN_SECONDS=20`` saves the tab for the docs (else pytest's tmp dir).
"""

import os
import shutil
import socket
import zipfile
from pathlib import Path

import pytest
from test_app_browser import ARGS, CHROMIUM, _need_chromium, _wait   # the same browser, the same way


@pytest.fixture(scope="module")
def served():
    """The app on a loopback port and a browser: ``(browser, demo)``."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    from cnnlstm_edu.app import build_demo, launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = launch(build_demo(device="cpu"), port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield browser, demo
            browser.close()
    finally:
        demo.close()


def _open(served):
    """A new browser tab (a new session) on the "Your clips" tab."""
    browser, demo = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(demo.local_url)
    page.wait_for_selector("#train-button", timeout=60_000)
    page.get_by_role("tab", name="Your clips").click()
    page.wait_for_selector("#clips-train-button", timeout=30_000)
    return page


def test_upload_the_sample_zip_train_and_see_per_frame_activations(served, tmp_path):
    from cnnlstm_edu.app.clip_store import sample_zip

    page = _open(served)
    archive = tmp_path / "my_clips.zip"
    shutil.copy(sample_zip(), archive)                 # the sample, as a learner's own file
    page.locator("#clips-zip input[type=file]").set_input_files(str(archive))
    _wait(lambda: "3 classes" in page.inner_text("#clips-summary"), 90, "the upload's summary")
    assert "from my_clips.zip:" in page.inner_text("#clips-summary")
    page.get_by_label("time budget (seconds)").fill(os.environ.get("TRAIN_SECONDS", "4"))   # docs: 20
    page.click("#clips-train-button")
    _wait(lambda: page.locator("#clips-activations img").count() > 0, 90, "the per-frame activations")
    _wait(lambda: "frame 8" in page.inner_text("#clips-beliefs"), 90, "the belief after each of 8 frames")
    _wait(lambda: "Done" in page.inner_text("#clips-status"), 120, "the end of the run")
    beliefs = page.inner_text("#clips-beliefs")
    assert "frame 1" in beliefs and "frame 9" not in beliefs and "true answer" in beliefs
    assert "after frame" in page.inner_text("#clips-final") and page.locator("#clips-hidden img").count() > 0
    image = page.locator("#clips-activations img").first
    _wait(lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"), 30, "the activations to load")
    assert image.evaluate("img => img.naturalHeight") > 8 * 24                    # a row per frame, drawn

    # One clip of the sample, alone: read frame by frame by the model just trained.
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if n.startswith("down/"))
        z.extract(name, tmp_path)
    page.locator("#clips-one input[type=file]").set_input_files(str(tmp_path / name))
    page.click("#clips-classify")
    _wait(lambda: "frames it says" in page.inner_text("#clips-one-message")
          or "Cannot do that" in page.inner_text("#clips-one-message"), 60, "the clip's reading")
    assert "After all 8 frames it says" in page.inner_text("#clips-one-message")
    assert "frame 8" in page.inner_text("#clips-one-beliefs") and page.locator("#clips-one-frames img").count() > 0
    assert "Traceback" not in page.inner_text("body")
    path = Path(os.environ.get("SAVE_SCREENSHOT") or tmp_path / "app_clips.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 50_000
    page.close()


def test_a_zip_slip_upload_shows_the_refusal_in_the_page(served, tmp_path):
    page, store = _open(served), served[1].clip_store
    archive = tmp_path / "slip.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("left/a.gif", b"GIF89a")
        z.writestr("../../escaped.txt", b"gotcha")
    before = store.disk_held()
    page.locator("#clips-zip input[type=file]").set_input_files(str(archive))
    _wait(lambda: "refused" in page.inner_text("#clips-summary"), 60, "the refusal")
    assert "points outside the folder" in page.inner_text("#clips-summary")
    assert store.disk_held() <= before and "Traceback" not in page.inner_text("body")
    page.close()
