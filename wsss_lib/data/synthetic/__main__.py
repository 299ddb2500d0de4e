"""``python -m wsss_lib.data.synthetic OUT_DIR [--n-train N ...]``: generate the benchmark with the default classes."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from wsss_lib.data.synthetic.config import SyntheticConfig
from wsss_lib.data.synthetic.writer import generate


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m wsss_lib.data.synthetic OUT_DIR [--n-train N ...]``: generate with the default classes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    defaults = SyntheticConfig()
    for f in dataclasses.fields(SyntheticConfig):
        if f.name == "classes":
            continue
        value = getattr(defaults, f.name)
        kind = _parse_bool if isinstance(value, bool) else type(value)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=value)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true")
    args = vars(parser.parse_args(argv))
    out_dir, workers, overwrite = args.pop("out_dir"), args.pop("workers"), args.pop("overwrite")
    path = generate(SyntheticConfig(**args), out_dir, workers=workers, overwrite=overwrite)
    print(path)


if __name__ == "__main__":
    main()
