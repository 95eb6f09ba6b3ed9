"""nbval runs the lessons in their small setting unless told otherwise (see cnnlstm_edu.course)."""

import os

from cnnlstm_edu.course import SMOKE_ENV

# The kernel nbval starts inherits this process's environment.
os.environ.setdefault(SMOKE_ENV, "1")
