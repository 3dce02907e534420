"""Pretrain the demo's tiny CLIP vision encoder: ``python -m dfd.data.demo.pretrain --out DIR``.

Writes a folder that ``CLIPVisionModel.from_pretrained`` and
``CLIPImageProcessor.from_pretrained`` load (model.safetensors, config.json,
preprocessor_config.json) plus a README.md recording how it was made. The shipped copy in
``dfd/assets/tiny_clip_demo`` was made with the defaults below.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
from pathlib import Path

import torch
import transformers

from dfd.data.demo.pretext import CLIP_MEAN, CLIP_STD, PretextResult, train_pretext
from dfd.data.demo.render import IMAGE_SIZE


def image_processor():
    """The `CLIPImageProcessor` matching `pretext.to_pixel_values` (bicubic to 64, CLIP stats)."""
    try:
        # transformers >= 5 falls back to this class (with a warning) when torchvision is
        # missing; both write the same preprocessor_config.json
        from transformers import CLIPImageProcessorPil as processor_class
    except ImportError:
        from transformers import CLIPImageProcessor as processor_class
    return processor_class(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        resample=3,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )


def write_readme(out: Path, args: argparse.Namespace, result: PretextResult, command: str) -> None:
    """Record how the weights were made, next to them."""
    n_params = sum(p.numel() for p in result.backbone.parameters())
    cpu = platform.processor() or platform.machine()
    text = f"""# tiny_clip_demo: the offline demo's CLIP vision encoder

A `CLIPVisionModel` (hidden 64, intermediate 256, 4 layers, 4 heads, patch 8, image 64,
quick_gelu; {n_params:,} parameters) that dfd pretrains itself, because offline there
are no pretrained CLIP weights and LN-tuning only re-weights features that pretraining
put into the encoder.

Pretext (clean rendered faces only, no manipulation): regress the image's 4x4 mean-colour
grid and the face's geometry (centre, half-axes) from `pooler_output` through a linear
layer, MSE on standardised targets (1.0 = predicting the mean).

- command: `{command}`
- seed: {args.seed}
- data: {args.images} rendered faces, each a new identity
- optimisation: {args.epochs} epochs, batch {args.batch_size}, AdamW lr {args.lr}
- final training loss (last epoch): {result.train_loss:.4f}
- held-out loss on {args.heldout} new faces: {result.heldout_loss:.4f} (at initialisation: {result.heldout_loss_at_init:.4f})
- time: {result.seconds:.0f} s on {torch.get_num_threads()} CPU threads ({cpu})
- software: torch {torch.__version__}, transformers {transformers.__version__}

Input pipeline: bicubic resize to 64, CLIP mean/std (`preprocessor_config.json`).
"""
    (out / "README.md").write_text(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the recipe of the shipped weights."""
    p = argparse.ArgumentParser(prog="python -m dfd.data.demo.pretrain", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="folder to write the model into")
    p.add_argument("--images", type=int, default=4000, help="clean training faces")
    p.add_argument("--heldout", type=int, default=400, help="faces to report held-out loss on")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> PretextResult:
    """Train on the pretext task and save backbone, image processor and README into ``--out``."""
    args = parse_args(argv)
    command = shlex.join(
        ["python", "-m", "dfd.data.demo.pretrain", *(argv if argv is not None else sys.argv[1:])]
    )
    result = train_pretext(
        images=args.images,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        heldout=args.heldout,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    result.backbone.save_pretrained(args.out)
    image_processor().save_pretrained(args.out)
    write_readme(args.out, args, result, command)
    print(
        f"saved to {args.out}: train mse {result.train_loss:.4f}, held-out mse "
        f"{result.heldout_loss:.4f} (init {result.heldout_loss_at_init:.4f}), {result.seconds:.0f} s"
    )
    return result


if __name__ == "__main__":
    main()
