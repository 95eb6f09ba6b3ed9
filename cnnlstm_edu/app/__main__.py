"""``python -m cnnlstm_edu.app [--host H] [--port P] [--share]``: serve the app."""

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())
