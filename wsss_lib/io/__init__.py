"""Files: atomic writing and checked reading of every artifact (:mod:`.atomic`), and the resumable, shardable
per-image loop of the inference and refinement stages (:mod:`.per_image`). The package re-exports what each module
names in its ``__all__``, explicitly (a test checks the two lists agree)."""

from wsss_lib.io.atomic import (
    ArtifactReadError,
    ArtifactWriteError,
    append_csv_rows,
    atomic_path,
    atomic_save_image,
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    reading,
    remove_stale_temporaries,
)
from wsss_lib.io.per_image import Shard, current_shard, for_each_missing, parse_shard

__all__ = [
    "ArtifactReadError",
    "ArtifactWriteError",
    "reading",
    "remove_stale_temporaries",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save_npz",
    "atomic_save_image",
    "append_csv_rows",
    "Shard",
    "parse_shard",
    "current_shard",
    "for_each_missing",
]
