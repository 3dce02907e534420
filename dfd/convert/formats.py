"""Which converter reads an input: ``format=`` names it, or ``auto`` tells it from the file.

| format | input | module |
|---|---|---|
| ``lightning`` | the paper authors' Lightning ``.ckpt`` | `dfd.convert.lightning` |
| ``gend`` | a GenD Hub folder (config.json + model.safetensors) | `dfd.convert.gend` |
| ``effort`` | Effort's released ``.pth`` state dict | `dfd.convert.effort` |
| ``fsfm`` | FSFM's released fine-tune ``{'model': ...}`` | `dfd.convert.fsfm` |

ForensicsAdapter's checkpoint is recognized and refused with the reason (README, "Comparing
with released detectors"). A checkpoint of another family than the format named fails with
one line naming what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from dfd.convert.common import ConversionError, Converted, load_torch_file, write_converted

FORMATS = ("auto", "lightning", "gend", "effort", "fsfm")
FORENSICS_ADAPTER = (
    "ForensicsAdapter's checkpoint (adapter.*, rec_attn_clip.*): not convertible. Its detector "
    "needs OpenAI-CLIP blocks rerun under a per-query attention mask, a second ViT adapter, a "
    "mask decoder and a BatchNorm post-process (a ~200-line module beyond dfd's backbones), and "
    "its official forward builds a randomly initialized fusion layer at every call, so its "
    "scores are not reproducible; see the README, 'Comparing with released detectors'"
)


def _converters() -> dict[str, Callable[[Path], Converted]]:
    from dfd.convert.effort import convert_effort
    from dfd.convert.fsfm import convert_fsfm
    from dfd.convert.gend import convert_gend

    return {"gend": convert_gend, "effort": convert_effort, "fsfm": convert_fsfm}


def detect_format(path: Path) -> str:
    """The format of `path`, from its content (folder layout or the keys of the torch file)."""
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
            return "gend"
        raise ConversionError(
            f"input={path} is a folder without config.json + model.safetensors (a GenD Hub "
            f"folder); pass a checkpoint file or a GenD folder"
        )
    obj = load_torch_file(path)
    if not isinstance(obj, Mapping):
        raise ConversionError(f"input={path} holds a {type(obj).__name__}, not a checkpoint dict")
    if isinstance(obj.get("state_dict"), Mapping) and "hyper_parameters" in obj:
        return "lightning"
    if isinstance(obj.get("model"), Mapping) and "blocks.0.attn.qkv.weight" in obj["model"]:
        return "fsfm"
    state = obj.get("state_dict", obj)
    keys = [str(k).removeprefix("module.") for k in state] if isinstance(state, Mapping) else []
    if any(k.endswith(".S_residual") for k in keys):
        return "effort"
    if any(k.startswith(("adapter.query_embed", "rec_attn_clip.")) for k in keys):
        raise ConversionError(f"{path} is {FORENSICS_ADAPTER}")
    raise ConversionError(
        f"cannot tell the format of {path} ({len(keys)} keys such as {sorted(keys)[:4]}): pass "
        f"format=<one of {list(FORMATS[1:])}>"
    )


def convert_input(
    input_path: Path, output: Path, overrides: Sequence[str] = (), fmt: str = "auto"
) -> Path:
    """Convert `input_path` (format `fmt`, or detected) into the dfd checkpoint folder `output`."""
    if fmt not in FORMATS:
        raise ConversionError(f"format={fmt!r}: choose one of {list(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(input_path)
        print(f"{input_path}: {fmt} format")
    if fmt == "lightning":
        from dfd.convert.lightning import convert

        return convert(Path(input_path), Path(output), list(overrides))
    converted = _converters()[fmt](Path(input_path))
    return write_converted(converted, Path(output), overrides)
