"""Importing any module of the package changes no global state (issue 14; STYLE.md rule 15).

Each check runs in a fresh interpreter: it loads the third-party libraries the package touches,
takes a snapshot of the state a module could change at import (the environment, PIL's image
size limit, IPython's display formatters, every function of gradio's modules, matplotlib's
settings, warning filters, torch's global settings), imports every module of ``cnnlstm_edu``,
and compares. The app applies its settings in ``main()``, the lessons' helper switches on the
notebook display hook when a lesson asks: neither may happen on import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(r"""
    import importlib, json, os, pkgutil, sys, warnings
    import PIL.Image, matplotlib, torch
    import gradio, gradio.processing_utils, gradio.utils, gradio.routes, gradio.components
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()   # a live shell, so a display hook would have somewhere to go

    def gradio_functions():
        found = {}
        for name, module in list(sys.modules.items()):
            if name == "gradio" or name.startswith("gradio."):
                for attr, value in list(vars(module).items()):
                    if callable(value):
                        found[f"{name}.{attr}"] = id(value)
        return found

    def snapshot():
        formatters = {kind: sorted(map(repr, f.type_printers)) + sorted(map(repr, f.deferred_printers))
                      for kind, f in shell.display_formatter.formatters.items()}
        return {
            "environ": dict(os.environ),
            "pil_max_pixels": PIL.Image.MAX_IMAGE_PIXELS,
            "ipython_formatters": formatters,
            "gradio_functions": gradio_functions(),
            "matplotlib_rc": {k: repr(v) for k, v in matplotlib.rcParams.items()},
            "warning_filters": [repr(f) for f in warnings.filters],
            "torch": [torch.get_num_threads(), str(torch.get_default_dtype()),
                      torch.are_deterministic_algorithms_enabled()],
        }

    before = snapshot()
    import cnnlstm_edu
    names = sorted(m.name for m in pkgutil.walk_packages(cnnlstm_edu.__path__, "cnnlstm_edu.")
                   if not m.name.endswith("__main__"))
    names += ["cnnlstm_edu.__main__", "cnnlstm_edu.app.__main__"]
    for name in names:
        importlib.import_module(name)
    after = snapshot()
    changed = {}
    for key in before:
        if before[key] != after[key]:
            if isinstance(before[key], dict):
                diff = {k: [before[key].get(k), after[key].get(k)]
                        for k in set(before[key]) | set(after[key]) if before[key].get(k) != after[key].get(k)}
                # a module gradio imports lazily adds new functions: only changed ones count
                if key == "gradio_functions":
                    diff = {k: v for k, v in diff.items() if v[0] is not None}
                if diff:
                    changed[key] = diff
            else:
                changed[key] = [before[key], after[key]]
    print(json.dumps({"modules": names, "changed": changed}, default=str))
""")


@pytest.fixture(scope="module")
def imported():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADIO_", "MPLBACKEND"))}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_module_is_imported(imported):
    # The probe would miss a module that walk_packages cannot see; these must all be there.
    for name in ("cnnlstm_edu.viz", "cnnlstm_edu.app.demo", "cnnlstm_edu.course", "cnnlstm_edu.trace",
                 "cnnlstm_edu.layers.convlstm", "cnnlstm_edu.train", "cnnlstm_edu.checkpoint"):
        assert any(m == name or m.startswith(name + ".") for m in imported["modules"]), name


@pytest.mark.parametrize("what", ["environ", "pil_max_pixels", "ipython_formatters", "gradio_functions",
                                  "matplotlib_rc", "warning_filters", "torch"])
def test_importing_changes_no_global_state(imported, what):
    assert what not in imported["changed"], f"importing cnnlstm_edu changed {what}: {imported['changed'][what]}"
