"""``python -m wsss_lib.runner``: the papermill runner (also ``python -m wsss_lib.reproduce``)."""

import sys

from wsss_lib.runner.cli import main

sys.exit(main())
