"""Pure operations used at several layers: dense CRF (``crf``), the random walk and affinity offsets
(``random_walk``), the schedules of the loss weights and learning rate (``schedules``) and label smoothing
(``smoothing``). Functions of arrays and tensors only: nothing here imports the rest of the library.
"""
