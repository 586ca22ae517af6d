"""Scale-out: GPUs for worker processes, shards of a pipeline, and one trainer per run (claims).

``gpus`` parses ``--gpus``/``--runs-per-gpu`` and gives each worker its CUDA_VISIBLE_DEVICES,
``shard`` splits a pipeline's cells among hosts, ``claim`` keeps a run to one process at a time.
Nothing here imports torch at import time.
"""
