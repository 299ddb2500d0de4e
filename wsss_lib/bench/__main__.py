"""``python -m wsss_lib.bench``: the throughput benchmark (:mod:`wsss_lib.bench.throughput`)."""

from wsss_lib.bench.throughput import main

if __name__ == "__main__":
    raise SystemExit(main())
