"""dfd.convert on synthetic checkpoints in the authors' exact layouts (no download).

The key names are written from the authors' code: their LightningModule holds the CLIP
vision tower as `feature_extractor` (a peft LN-tuning model around `CLIPEncoder.vision_model`
in yermandy/deepfake-detection; the plain encoder with `unfreeze_layers` in yermandy/GenD)
and the head as `model.linear`; `hyper_parameters` is their `Config.model_dump()`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from enum import StrEnum
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from peft import LNTuningConfig, get_peft_model
from safetensors.torch import load_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from dfd.convert.lightning import ConversionError, config_overrides, read_lightning_checkpoint
from dfd.engine.restore import load_detector
from dfd.runtime.config import PROJECT_ROOT

LN = ("pre_layrnorm", "layer_norm1", "layer_norm2", "post_layernorm")
PEFT_PREFIX = "feature_extractor.base_model.model.vision_model."
PLAIN_PREFIX = "feature_extractor.vision_model."
# openai/clip-vit-large-patch14's vision config, written out (not read from dfd's conf)
VIT_L14 = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    patch_size=14,
    image_size=224,
    hidden_act="quick_gelu",
)
TINY = PROJECT_ROOT / "dfd" / "assets" / "tiny_clip_demo"


def authors_hparams(backbone: str, **changes) -> dict:
    """The released model's Config.model_dump() (src/config.py), plain types only."""
    hp = {
        "run_name": "example-run",
        "seed": 42,
        "num_classes": 2,
        "checkpoint": None,
        "backbone": backbone,
        "freeze_feature_extractor": True,
        "unfreeze_layers": [],
        "head": "LinearNorm",
        "peft": {
            "enabled": True,
            "lora": {"enabled": False, "target_modules": ["out_proj"], "rank": 1, "alpha": 32},
            "ln_tuning": {"enabled": True, "target_modules": [*LN, "layernorm"]},
        },
        "val_files": [
            "config/datasets/CDFv2/test/Celeb-synthesis.txt",
            "config/datasets/CDFv2/test/Celeb-real.txt",
            "config/datasets/CDFv2/test/YouTube-real.txt",
        ],
        "slerp_feature_augmentation": True,
        "slerp_feature_augmentation_range": [0.0, 1.0],
        "lr": 8e-5,
        "min_lr": 5e-5,
        "loss": {
            "ce_labels": 1.0,
            "label_smoothing": 0.0,
            "bce_labels": 0.0,
            # distinct from dfd's defaults, so the test sees that they are read
            "uniformity": 0.25,
            "alignment_labels": 0.5,
        },
        "max_epochs": 10,
        "batch_size": 128,
        "precision": "bf16-mixed",
    }
    hp.update(changes)
    return hp


def save_lightning(path: Path, state_dict: dict, hparams: dict) -> Path:
    """A Lightning-shaped checkpoint file (the top-level keys Lightning 2.5 writes)."""
    torch.save(
        {
            "epoch": 7,
            "global_step": 4242,
            "pytorch-lightning_version": "2.5.0",
            "state_dict": state_dict,
            "loops": {},
            "callbacks": {
                "ModelCheckpoint{'monitor': 'val/mAP_video'}": {
                    "best_model_score": torch.tensor(0.97)
                }
            },
            "optimizer_states": [],
            "lr_schedulers": [],
            "hyper_parameters": hparams,
        },
        path,
    )
    return path


def tower_shapes(arch: dict) -> dict[str, torch.Size]:
    """The vision tower's own parameter names and shapes (CLIPVisionTransformer's, which the
    authors reach as `vision_model`), from transformers on the meta device."""
    with torch.device("meta"):
        tower = CLIPVisionModel(CLIPVisionConfig(**arch))
    return {k: v.shape for k, v in tower.state_dict().items()}


def synthetic_released_state(shapes: dict[str, torch.Size], layout: str, seed: int = 0) -> dict:
    """The authors' state_dict: trained LayerNorms and head random, frozen tensors as
    zero-stride views of one number (the real shapes at no size on disk)."""
    g = torch.Generator().manual_seed(seed)
    prefix = PEFT_PREFIX if layout == "peft" else PLAIN_PREFIX
    sd = {}
    for key, shape in shapes.items():
        module, param = key.rsplit(".", 1)
        frozen = torch.zeros(1).expand(shape)
        if module.rsplit(".", 1)[-1] in LN:
            trained = torch.randn(shape, generator=g)
            if layout == "peft":
                sd[f"{prefix}{module}.base_layer.{param}"] = frozen
                sd[f"{prefix}{module}.ln_tuning_layers.default.{param}"] = trained
            else:
                sd[f"{prefix}{key}"] = trained
        else:
            sd[f"{prefix}{key}"] = frozen
    width = shapes["post_layernorm.weight"][0]
    sd["model.linear.weight"] = torch.randn(2, width, generator=g)
    sd["model.linear.bias"] = torch.randn(2, generator=g)
    return sd


def run_convert(monkeypatch, tmp_path: Path, ckpt: Path, out: Path, *extra: str) -> None:
    """`python -m dfd.convert input=... output=...`, in this process."""
    import dfd.convert

    argv = ["dfd.convert", f"input={ckpt}", f"output={out}", f"paths.output_root={tmp_path}"]
    monkeypatch.setattr(sys, "argv", [*argv, *extra])
    try:
        dfd.convert.main()
    finally:
        GlobalHydra.instance().clear()


def test_released_layout_on_vit_l14_converts_to_its_104450_trained_numbers(
    tmp_path, monkeypatch, capsys
):
    shapes = tower_shapes(VIT_L14)
    assert sum(s.numel() for s in shapes.values()) == 303_179_776  # the real ViT-L/14 tower
    sd = synthetic_released_state(shapes, "peft")
    key = "feature_extractor.base_model.model.vision_model.encoder.layers.23.layer_norm2.ln_tuning_layers.default.weight"
    assert key in sd  # peft's layout, as in the released file
    ckpt = save_lightning(
        tmp_path / "model.ckpt", sd, authors_hparams("openai/clip-vit-large-patch14")
    )
    out = tmp_path / "converted"
    run_convert(monkeypatch, tmp_path, ckpt, out)
    printed = capsys.readouterr().out
    assert "released model's loss: CE 1, uniformity 0.25, alignment 0.5" in printed
    assert "selected on val_files = ['config/datasets/CDFv2/test/Celeb-synthesis.txt'" in printed

    tensors = load_file(str(out / "trainable.safetensors"))
    assert sum(t.numel() for t in tensors.values()) == 104_450
    modules = ["pre_layrnorm", "post_layernorm"] + [
        f"encoder.layers.{i}.layer_norm{j}" for i in range(24) for j in (1, 2)
    ]
    pairs = {
        f"backbone.{m}.ln_tuning_layers.default.{p}": f"{PEFT_PREFIX}{m}.ln_tuning_layers.default.{p}"
        for m in modules
        for p in ("weight", "bias")
    }
    pairs |= {"head.fc.weight": "model.linear.weight", "head.fc.bias": "model.linear.bias"}
    assert set(tensors) == set(pairs)
    for ours, theirs in pairs.items():
        assert torch.equal(tensors[ours], sd[theirs]), ours

    cfg = OmegaConf.load(out / "config.yaml")
    assert cfg.backbone.name_or_path == "openai/clip-vit-large-patch14"
    assert cfg.head._target_ == "dfd.models.heads.LinearNormHead"
    assert cfg.peft.config._target_ == "peft.LNTuningConfig"
    assert (cfg.loss.w_ce, cfg.loss.w_unif, cfg.loss.w_align) == (1.0, 0.25, 0.5)
    assert cfg.loss.slerp is True and cfg.trainer.precision == "bf16" and cfg.seed == 42
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert meta["hyper_parameters"]["loss"]["uniformity"] == 0.25
    assert meta["trainable_numbers"] == 104_450
    assert "backbone=clip_vit_l14" in json.loads((out / "run.json").read_text())["overrides"]


class _Authors(nn.Module):
    """The authors' LightningModule's tensors: `feature_extractor` (CLIPEncoder: `vision_model`
    = the tower, optionally wrapped by peft LN-tuning) and `model.linear`."""

    def __init__(self, layout: str, unfreeze: bool, seed: int = 1, source: Path = TINY) -> None:
        super().__init__()
        encoder = nn.Module()
        encoder.vision_model = CLIPVisionModel.from_pretrained(source)
        g = torch.Generator().manual_seed(seed)
        if layout == "peft":
            encoder = get_peft_model(encoder, LNTuningConfig(target_modules=list(LN)))
        if layout == "peft" or unfreeze:
            # trained LayerNorms: move them away from the pretrained values the dfd side loads
            with torch.no_grad():
                for name, p in encoder.named_parameters():
                    if any(f"{ln}." in name for ln in LN) and "base_layer" not in name:
                        p.add_(0.3 * torch.randn(p.shape, generator=g))
        self.feature_extractor = encoder
        self.model = nn.Module()
        self.model.linear = nn.Linear(64, 2)

    def forward(self, x: torch.Tensor, normalize: bool) -> torch.Tensor:
        # CLIPEncoder.forward: vision_model(x).pooler_output (through peft's LN copies if any)
        feats = self.feature_extractor.vision_model(pixel_values=x).pooler_output
        return self.model.linear(F.normalize(feats, dim=-1) if normalize else feats)


@pytest.mark.parametrize(
    ("layout", "head", "unfreeze", "peft_target"),
    [
        ("peft", "LinearNorm", [], "peft.LNTuningConfig"),  # the released model
        ("plain", "linear", [*LN], "peft.LNTuningConfig"),  # GenD's LN recipe
        ("plain", "linear", [], None),  # GenD's linear probe
    ],
)
def test_converted_folder_scores_like_the_authors_model(
    tmp_path, monkeypatch, layout, head, unfreeze, peft_target
):
    torch.manual_seed(0)
    authors = _Authors(layout, unfreeze=bool(unfreeze)).eval()
    loss = (
        {"ce_labels": 1.0, "label_smoothing": 0.0, "uniformity": 0.0, "alignment_labels": 0.0}
        if head == "linear"
        else authors_hparams("")["loss"]
    )
    hp = authors_hparams(
        str(TINY),
        head=head,
        unfreeze_layers=unfreeze,
        loss=loss,
        slerp_feature_augmentation=head == "LinearNorm",
    )
    sd = authors.state_dict()
    assert any(k.startswith(PEFT_PREFIX if layout == "peft" else PLAIN_PREFIX) for k in sd)
    ckpt = save_lightning(tmp_path / "model.ckpt", sd, hp)
    out = tmp_path / "converted"
    run_convert(monkeypatch, tmp_path, ckpt, out)

    detector, cfg = load_detector(out)
    if peft_target is None:
        assert cfg.peft._target_ == "dfd.models.adapters.FrozenBackbone"
    else:
        assert cfg.peft.config._target_ == peft_target
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = authors(x, normalize=head == "LinearNorm")
        torch.testing.assert_close(detector.logits(x), expected, rtol=1e-5, atol=1e-5)


def test_a_checkpoint_trained_from_a_local_encoder_folder_converts_with_the_folder_override(
    tmp_path, monkeypatch, capsys
):
    # the authors trained from their own copy of the encoder: hyper_parameters.backbone is a
    # folder on their machine, which no dfd backbone option names
    folder = tmp_path / "encoders" / "my-tiny-clip"
    CLIPVisionModel.from_pretrained(TINY).save_pretrained(folder)
    shutil.copy(TINY / "preprocessor_config.json", folder)  # as `hf download` leaves it
    authors = _Authors("peft", unfreeze=False, source=folder).eval()
    hp = authors_hparams("/home/someone/models/my-tiny-clip", seed=3)
    ckpt = save_lightning(tmp_path / "model.ckpt", authors.state_dict(), hp)

    with pytest.raises(SystemExit):  # without the override: one line that says what to pass
        run_convert(monkeypatch, tmp_path, ckpt, tmp_path / "refused")
    err = capsys.readouterr().err
    assert "'/home/someone/models/my-tiny-clip' has no dfd backbone option" in err
    assert 'overrides=["backbone.name_or_path=<folder>"]' in err.replace("\\", "\\")
    assert not (tmp_path / "refused").exists()

    out = tmp_path / "converted"
    run_convert(monkeypatch, tmp_path, ckpt, out, f'overrides=["backbone.name_or_path={folder}"]')
    # the folder's config.json is tiny_clip's architecture: that option, with the folder
    printed = capsys.readouterr().out
    assert "backbone=tiny_clip" in printed and f"backbone.name_or_path={folder}" in printed
    detector, cfg = load_detector(out)
    assert cfg.backbone.name == "tiny_clip" and cfg.backbone.name_or_path == str(folder)
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(
            detector.logits(x), authors(x, normalize=True), rtol=1e-5, atol=1e-5
        )


def test_a_backbone_option_in_the_overrides_is_taken_as_named(tmp_path):
    from dfd.convert.lightning import backbone_option

    option, lns = backbone_option("/elsewhere/clip", overrides=["backbone=clip_vit_l14"])
    assert option == "clip_vit_l14" and "layer_norm1" in lns
    with pytest.raises(ConversionError, match="overrides backbone=clip_vit_l15: no such option"):
        backbone_option("/elsewhere/clip", overrides=["backbone=clip_vit_l15"])
    # a folder override that holds no encoder dfd knows is named as such
    other = tmp_path / "other"
    CLIPVisionModel(
        CLIPVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    ).save_pretrained(other)
    with pytest.raises(ConversionError, match="is not the folder of one of their encoders"):
        backbone_option("/elsewhere/clip", overrides=[f"backbone.name_or_path={other}"])


_TRIPPED = []


def _trip() -> object:
    _TRIPPED.append(True)
    return "unpickled"


class _Tripwire:
    def __reduce__(self):
        return (_trip, ())


class _Backbone(StrEnum):
    L14 = "openai/clip-vit-large-patch14"


@pytest.mark.parametrize("payload", [_Tripwire(), _Backbone.L14])
def test_a_checkpoint_that_needs_a_full_unpickle_is_refused(tmp_path, monkeypatch, capsys, payload):
    ckpt = save_lightning(
        tmp_path / "model.ckpt", {"model.linear.bias": torch.zeros(2)}, {"backbone": payload}
    )
    with pytest.raises(ConversionError, match=r"weights_only=True.*does not unpickle"):
        read_lightning_checkpoint(ckpt)
    with pytest.raises(SystemExit) as stop:
        run_convert(monkeypatch, tmp_path, ckpt, tmp_path / "out")
    # through dfd.runtime.cli.entry_point like every command: a user error is status 1 and
    # one line (dfd.convert's own handler exited with 2 before)
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "weights_only=True" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not _TRIPPED and not (tmp_path / "out").exists()


def test_mismatched_keys_and_shapes_are_listed(tmp_path, monkeypatch, capsys):
    sd = _Authors("peft", unfreeze=False).state_dict()
    gone = f"{PEFT_PREFIX}encoder.layers.2.layer_norm1.ln_tuning_layers.default.bias"
    del sd[gone]
    sd["model.linear.weight"] = torch.zeros(3, 64)
    ckpt = save_lightning(tmp_path / "model.ckpt", sd, authors_hparams(str(TINY)))
    with pytest.raises(SystemExit):
        run_convert(monkeypatch, tmp_path, ckpt, tmp_path / "out")
    err = capsys.readouterr().err
    assert (
        "missing 1 ['backbone.encoder.layers.2.layer_norm1.ln_tuning_layers.default.bias']" in err
    )
    assert "wrong shape 1 ['head.fc.weight: (3, 64) in the checkpoint, (2, 64) in dfd']" in err

    sd = _Authors("peft", unfreeze=False).state_dict()
    sd["model.extra.weight"] = torch.zeros(1)
    ckpt = save_lightning(tmp_path / "model.ckpt", sd, authors_hparams(str(TINY)))
    with pytest.raises(SystemExit):
        run_convert(monkeypatch, tmp_path, ckpt, tmp_path / "out")
    assert "['model.extra.weight']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"head": "SphereFace"}, "heads"),
        ({"head": "linear"}, "needs the linear_norm head"),
        # DINOv3 became a backbone option (issue 20); an encoder dfd still lacks
        ({"backbone": "facebook/sam-vit-base"}, "no dfd backbone option"),
        ({"freeze_feature_extractor": False}, "fine-tuned"),
        ({"unfreeze_layers": ["mlp"]}, "unfreeze_layers"),
        ({"slerp_feature_augmentation_range": [0.2, 0.8]}, "U\\(0, 1\\)"),
    ],
)
def test_hyper_parameters_dfd_cannot_represent_are_refused(tmp_path, changes, message):
    from dfd.convert.lightning import AuthorsCheckpoint

    ckpt = AuthorsCheckpoint(tmp_path, {}, {**authors_hparams(str(TINY)), **changes})
    with pytest.raises(ConversionError, match=message):
        config_overrides(ckpt, "peft", "ln")


def test_unfrozen_layers_that_dfd_would_not_train_are_refused(tmp_path):
    from dfd.convert.lightning import AuthorsCheckpoint, trained_tensors

    sd = _Authors("plain", unfreeze=False).state_dict()
    hp = authors_hparams(str(TINY), head="linear", unfreeze_layers=["layer_norm1", "mlp"])
    with pytest.raises(ConversionError, match=r"encoder\.layers\.0\.mlp\.fc1\.weight trained"):
        trained_tensors(AuthorsCheckpoint(tmp_path, sd, hp), list(LN))


def test_a_text_file_is_one_line_and_status_1(tmp_path, monkeypatch, capsys):
    text = tmp_path / "model.ckpt"
    text.write_text("not a checkpoint\n" * 20)
    with pytest.raises(SystemExit) as stop:
        run_convert(monkeypatch, tmp_path, text, tmp_path / "out")
    err = capsys.readouterr().err
    assert stop.value.code == 1 and "Traceback" not in err
    assert err.strip() == err.strip().splitlines()[0]
    assert f"{text} is not a torch checkpoint (it starts with b'not '" in err
    # torch's format with garbage inside: still one line
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    with pytest.raises(SystemExit) as stop:
        run_convert(monkeypatch, tmp_path, garbage, tmp_path / "out")
    err = capsys.readouterr().err
    assert stop.value.code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{garbage} is not a readable torch checkpoint" in err
