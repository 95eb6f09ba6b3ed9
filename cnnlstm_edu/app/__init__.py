"""The Gradio app: train a CNN-LSTM live and watch what each frame does to it, on digits or your own clips.

``build_demo()`` lays out the page and returns the ``gr.Blocks`` (importing this package
launches nothing and changes no global state); ``launch(demo)`` serves it on 127.0.0.1:7860
(or ``$GRADIO_SERVER_PORT``) behind the request guard; ``main()`` is ``python app.py`` /
``python -m cnnlstm_edu.app``. The modules:

- :mod:`.demo`: ``build_demo``, the wiring of the three tabs;
- :mod:`.train_tab`, :mod:`.try_tab`, :mod:`.shapes_tab`, :mod:`.clips_tab` ("Your clips"): one
  function per tab that builds its components and returns them as a dataclass, and the functions
  behind its buttons;
- :mod:`.server`: ``configure`` (telemetry off, PIL's limit, atomic image cache), ``launch``, ``main``;
- :mod:`.guard`: what the server refuses before gradio sees it (blob route, URLs, upload bounds);
- :mod:`.fields`: number fields and the drawing pad, checked as values arrive;
- gradio-free: :mod:`.settings` (``TrainSettings``, per-run caps), :mod:`.session` (``Session``,
  ``SessionRegistry``), :mod:`.training` (a run as a stream of updates), :mod:`.tryit`,
  :mod:`.shape_lab`, :mod:`.views`; for a learner's clips :mod:`.clip_settings` (``ClipFormat``,
  ``ClipSettings``, ``ClipCaps``), :mod:`.clip_store` (uploads unpacked per session, within disk
  and memory caps; the sample zip) and :mod:`.clip_reading` (one clip, frame by frame).
"""

from .demo import build_demo
from .server import CSS, THEME, launch, main

__all__ = ["CSS", "THEME", "build_demo", "launch", "main"]
