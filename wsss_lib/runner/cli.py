"""The command line of the papermill runner: ``python -m wsss_lib.reproduce --profile smoke`` (``make reproduce``).

For each ``notebooks/NN_name.ipynb`` the profile names (in order, or those named by ``--only``):

1. parameters = the profile's ``common`` block + its ``notebooks.NN_name`` block (+ ``--data``, + ``--set``); every
   key must be a parameter of that notebook (``papermill.inspect_notebook``), and every stage dict (``classifier``,
   ``c2am``, ...; :mod:`wsss_lib.stages.parameters`) must build into its config, over the notebook's defaults where
   the profile gives none: checked for all notebooks before anything runs. ``--set classifier.train.epochs=3``
   changes one nested field of the stage dict it names, in every notebook that has that dict, keeping its others;
2. execute with papermill, kernel ``python3``, language ``python``, working directory ``notebooks/`` (as
   JupyterLab and nbval do), writing ``reports/<profile>/notebooks/NN_name.ipynb``;
3. record status and duration in ``reports/<profile>/manifest.json`` (git commit, profile, parameters,
   package versions). A notebook whose executed copy is up to date (same source, same parameters,
   succeeded) is skipped unless ``--force``; expensive stages are cached in the work directory anyway.
   Every finished stage a notebook reuses is checked against its ``DONE.json`` (file sizes; SHA-256 hashes
   too with ``--verify``); ``python -m wsss_lib.runner.verify WORK_DIR`` checks a whole work directory.

On a failure the partial executed notebook is kept, the notebook and failing cell are named, and the exit
status is non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys

from wsss_lib.config import available_profiles
from wsss_lib.io import parse_shard
from wsss_lib.runner.overrides import parse_override
from wsss_lib.runner.run import run_profile

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", choices=available_profiles())
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers or stems to run (default: all)")
    parser.add_argument("--force", action="store_true", help="re-execute notebooks that are up to date")
    parser.add_argument("--data", default=None, help="dataset root (sets every notebook's data_root)")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (default: none)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run every notebook with the profile's code path but capped data, steps, batch and image "
                             "size, random weights where the profile asks for hub weights; writes <profile>-dry "
                             "folders; without --data, generated VOC/COCO-layout fixtures (see wsss_lib.runner.dry_run)")
    parser.add_argument("--small-backbones", action="store_true",
                        help="with --dry-run: every backbone the smallest timm model of its family (ResNeSt-269 -> "
                             "ResNeSt-14d, ResNet-50/101 -> ResNet-26); writes <profile>-small-dry folders; what CI runs")
    parser.add_argument("--executor", default="inline", choices=["inline", "local", "slurm"],
                        help="inline: here, one kernel per notebook (default); local / slurm: one submitit job per "
                             "notebook, submitted in order with the profile's resources block (sbatch for slurm)")
    parser.add_argument("--shard", default=None, metavar="I/N|auto",
                        help="process only shard I of N (0-based, strided) of every per-image stage, or 'auto': the "
                             "task of a SLURM job array, else the torchrun rank (sets WSSS_SHARD for the notebooks; "
                             "default: the whole split); the shard that writes a stage's last image marks it done, "
                             "the others stop cleanly")
    parser.add_argument("--verify", action="store_true",
                        help="check every finished stage a notebook uses against the SHA-256 hashes its DONE.json "
                             "recorded, not only the sizes (sets WSSS_VERIFY=1 for the notebooks)")
    parser.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter in every notebook of the run that declares it (value read as "
                             "YAML, e.g. --set 'seeds=[0]'), or one field of a stage dict (--set "
                             "classifier.train.epochs=3, --set runtime.devices=2); recorded in the manifest")
    args = parser.parse_args(argv)
    if args.shard is not None:
        try:
            os.environ["WSSS_SHARD"] = "auto" if args.shard == "auto" else str(parse_shard(args.shard))
        except ValueError as exc:
            parser.error(str(exc))
    if args.verify:
        os.environ["WSSS_VERIFY"] = "1"  # the papermill kernels inherit it
    return run_profile(args.profile, only=args.only, force=args.force, data_root=args.data, timeout=args.timeout,
                       dry_run=args.dry_run, overrides=dict(args.overrides), small_backbones=args.small_backbones,
                       executor=args.executor)


if __name__ == "__main__":
    sys.exit(main())
