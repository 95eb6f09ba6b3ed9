"""The Gradio app: train a CNN-LSTM live and watch what each quadrant frame does to it.

``build_demo()`` lays out the page and returns the ``gr.Blocks`` (importing this package
launches nothing); ``launch(demo)`` serves it on 127.0.0.1:7860 (or ``$GRADIO_SERVER_PORT``);
``main()`` is ``python app.py`` / ``python -m cnnlstm_edu.app``. The page's functions live in
:mod:`.demo`; the work behind them, free of gradio, in :mod:`.training`, :mod:`.tryit`,
:mod:`.shape_lab` and :mod:`.views`.
"""

from .demo import build_demo
from .server import CSS, THEME, launch, main

__all__ = ["CSS", "THEME", "build_demo", "launch", "main"]
