"""The papermill runner behind ``make reproduce`` (``python -m wsss_lib.reproduce``):

- :mod:`.cli`: the command line;
- :mod:`.notebooks`: which notebooks a profile runs and the check of their parameters before anything runs;
- :mod:`.overrides`: ``--set`` and a profile's ``overrides`` (one vocabulary of dotted paths);
- :mod:`.run`: executing the notebooks in order, the manifest (:mod:`.manifest`), the failures;
- :mod:`.executors`: the same batch as submitit jobs (this machine or SLURM);
- :mod:`.dry_run` and :mod:`.plan`: a paper profile proven end to end on fixtures, and the real run's plan;
- :mod:`.verify`: a work directory checked against what its stages recorded.
"""
