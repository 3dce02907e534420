"""Throughput benchmark (`python -m dfd.bench`): data pipeline, model step, end to end, FLOPs.

Modules, one job each: `timing` (clocks, interleaved repeats, medians), `machine` (what ran),
`crops` (PNG crops on disk), `pipeline` (a: images/s per worker, current vs `baseline`),
`model_step` (b: the train step and eval forward, FLOP counting), `end_to_end` (c: loader
plus step), `ceiling` (d: matmul rate), `results` (report, metrics, JSON), `runner` (sections
from the config).
"""
