"""Checks of the synthetic benchmark's design (:mod:`.benchmark_v2`: the pre-registered criteria of benchmark v2)."""
