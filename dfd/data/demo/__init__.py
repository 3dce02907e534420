"""The embedded offline demo: procedurally rendered face videos with blended manipulations.

`ensure_demo(root)` generates the benchmark once; `demo_index(root, dataset, split)` is
the reader a data config instantiates. `python -m dfd.data.demo.pretrain` pretrains the
tiny CLIP vision encoder shipped in ``dfd/assets/tiny_clip_demo`` on clean renders.
"""

from dfd.data.demo.build import DemoSpec, ensure_demo
from dfd.data.demo.reader import demo_index
from dfd.data.demo.recipes import DATASETS, TARGETS

__all__ = ["DATASETS", "TARGETS", "DemoSpec", "demo_index", "ensure_demo"]
