"""``python -m wsss_lib.reproduce``: the papermill runner behind ``make reproduce`` (:mod:`wsss_lib.runner`)."""

import sys

from wsss_lib.runner.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
