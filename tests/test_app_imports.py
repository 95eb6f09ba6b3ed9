"""Importing the app changes nothing (issue 14): its settings are applied by server.configure().

Checked in a fresh interpreter, which imports gradio and PIL first (so their own import-time
state is the baseline), then every module of ``cnnlstm_edu.app``.
"""

import os
import subprocess
import sys
from pathlib import Path

import cnnlstm_edu.app

APP = Path(cnnlstm_edu.app.__file__).parent

CODE = """
import importlib, json, os, pkgutil
import gradio.processing_utils as pu
from PIL import Image

def snapshot():
    return {"environ": dict(os.environ), "max_pixels": Image.MAX_IMAGE_PIXELS,
            "save_pil_to_cache": id(pu.save_pil_to_cache)}

before = snapshot()
import cnnlstm_edu.app as app
names = [m.name for m in pkgutil.iter_modules(app.__path__, "cnnlstm_edu.app.")]
for name in names:
    importlib.import_module(name)
after = snapshot()
changed = {k: (str(before[k])[:200], str(after[k])[:200]) for k in before if before[k] != after[k]}
from cnnlstm_edu.app.server import configure
configure()
applied = snapshot()
print(json.dumps({"modules": names, "changed": changed,
                  "configured": {k: before[k] != applied[k] for k in before}}))
"""


def test_importing_every_app_module_changes_no_global_state():
    files_before = sorted(p.name for p in APP.iterdir())
    # A clean environment: an app launched earlier in this process has already configured it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_")}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"cnnlstm_edu.app.server", "cnnlstm_edu.app.demo", "cnnlstm_edu.app.fields"} <= set(report["modules"])
    assert report["changed"] == {}
    # configure() is where they are applied: telemetry off, PIL's limit, the atomic image cache.
    assert report["configured"] == {"environ": True, "max_pixels": True, "save_pil_to_cache": True}
    # Nor does importing write files (gradio writes a .pyi beside any component subclass).
    assert sorted(p.name for p in APP.iterdir()) == files_before
    assert not list(APP.glob("*.pyi"))
