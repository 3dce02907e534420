"""Readers for the deepfake benchmarks: each returns a `FrameIndex` and is built from a `conf/dataset` config.

One module per format: the benchmark-specific readers (`ff`, `cdf_v2`, `dfdc`, `dfdcp`,
`ffiw`, `dfd`, `cdf_pp` for Celeb-DF++, `fakeavceleb`, `idforge`, `dfdm`, `deeperforensics`)
read the official split/label files over the preprocessed frame layout
``<root>/<source>/<video>/<frame>.png``; the generic ones read DeepfakeBench JSONs
(`deepfakebench`), the paper's file lists (`filelist`), plain folders (`folder`) and
Hugging Face `datasets` (`hf`: hub ids, parquet/image folders, ``save_to_disk`` folders).
Every reader is made with `_common.reader`: it validates its split names, derives labels
as the dataset defines them, reports bad input as a `DataError` (``on_error="raise"``) or
counts it in `FrameIndex.skipped` (``"skip"``), optionally decodes every frame once
(``verify="decode"``), and caches its index under `cache_dir` with a key made of its
bound arguments.
"""

from dfd.data.readers._common import DataError
from dfd.data.readers.cdf_pp import read_cdf_pp
from dfd.data.readers.cdf_v2 import read_cdf_v2
from dfd.data.readers.deeperforensics import read_deeperforensics
from dfd.data.readers.deepfakebench import read_deepfakebench
from dfd.data.readers.dfd import read_dfd
from dfd.data.readers.dfdc import read_dfdc
from dfd.data.readers.dfdcp import read_dfdcp
from dfd.data.readers.dfdm import read_dfdm
from dfd.data.readers.fakeavceleb import read_fakeavceleb
from dfd.data.readers.ff import read_ff
from dfd.data.readers.ffiw import read_ffiw
from dfd.data.readers.filelist import read_filelist
from dfd.data.readers.folder import read_folder
from dfd.data.readers.hf import read_hf
from dfd.data.readers.idforge import read_idforge

__all__ = [
    "DataError",
    "read_cdf_pp",
    "read_cdf_v2",
    "read_deeperforensics",
    "read_deepfakebench",
    "read_dfd",
    "read_dfdc",
    "read_dfdcp",
    "read_dfdm",
    "read_fakeavceleb",
    "read_ff",
    "read_ffiw",
    "read_filelist",
    "read_folder",
    "read_hf",
    "read_idforge",
]
