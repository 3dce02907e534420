"""Datasets: frame indexes, readers for benchmark formats, the demo benchmark, image pipelines."""
