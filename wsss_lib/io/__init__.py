"""Files: atomic writing and checked reading of every artifact (:mod:`.atomic`), and the resumable, shardable
per-image loop of the inference and refinement stages (:mod:`.per_image`). The package re-exports what each module
names in its ``__all__``."""

from wsss_lib.io import atomic, per_image
from wsss_lib.io.atomic import *  # noqa: F403
from wsss_lib.io.per_image import *  # noqa: F403

__all__ = [*atomic.__all__, *per_image.__all__]
