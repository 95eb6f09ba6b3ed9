"""Launch the cnnlstm-edu Gradio app: ``python app.py`` then open http://127.0.0.1:7860.

Options: ``--port 8000`` (or ``GRADIO_SERVER_PORT``), ``--host 0.0.0.0`` to serve the network,
``--share`` for a public gradio.live link (off by default). The app is ``cnnlstm_edu.app``.
"""

import sys

from cnnlstm_edu.app import main

if __name__ == "__main__":
    sys.exit(main())
