"""dfd's benchmark (`python -m dfd.bench`): data pipeline, model step, end to end, FLOPs, scale.

Modules, one job each: `timing` (clocks, interleaved repeats, medians), `machine` (what ran),
`crops` (PNG crops on disk), `pipeline` (a: images/s per worker, current vs `baseline`),
`model_step` (b: the train step and eval forward, FLOP counting), `end_to_end` (c: loader
plus step), `ceiling` (d: matmul rate), `scale` (e: a real run's stages as the data grows,
on a `synthetic` benchmark, each of `stages` timed in its own process by `memory`; `suite`:
the reporting of a full evaluation suite), `results` (report, metrics, JSON), `runner`
(sections from the config).
"""
