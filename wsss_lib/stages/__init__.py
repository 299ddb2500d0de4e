"""Pipeline stages as explicit, separately runnable steps (train a classifier, infer CAMs, evaluate them).

Each stage stores its outputs in the profile's work directory under a key derived from its full
configuration (``wsss_lib.artifacts``), so a notebook computes only what is missing and a later notebook
finds an earlier one's outputs by rebuilding its configuration.
"""
