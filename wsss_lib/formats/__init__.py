"""File formats of the pipeline's artifacts: one module per kind of file, each with its path convention, a writer
and a reader that checks what it reads and names the file in every error. The lowest layer above ``wsss_lib.io``:
every other package may read and write these files; nothing here imports the rest of the library.

- ``cam_io``: CAM files (``.npz``: keys, low-resolution and full-resolution maps);
- ``masks``: class-index PNGs (ground truth, pseudo-masks, affinity labels) and the VOC palette;
- ``saliency_io``: saliency maps and pseudo-saliency masks;
- ``errors``: ``DatasetError``, the error of bad dataset input.
"""
