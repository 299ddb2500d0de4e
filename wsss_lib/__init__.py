"""wsss_lib: a reproducible lab for the P-NOC paper (weakly supervised semantic segmentation).

The package is layered, highest first: entry points (``runner``, ``bench``, ``studies``), ``reporting``,
``stages``, ``inference`` | ``refinement``, ``train``, ``methods`` | ``evaluation``, ``models``, ``data``,
``formats`` | ``ops``, ``artifacts``, and the foundation (``config``, ``io``, ``timing``, ``provenance``, ``paths``).
A module imports only from its own layer or the layers below it. The one list of the layers, with what each holds,
is the import contract in ``pyproject.toml`` (``[tool.importlinter]``), checked by ``lint-imports`` in ``make test``.
"""

__version__ = "0.1.0"
