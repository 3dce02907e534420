"""Backbones load from a local folder exactly as from the hub, and take their input geometry
from the image-processor config; missing weights fail with a message that says what to do;
every conf/backbone option (ViTs and ConvNeXt) builds at a tiny size and runs forward."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

from dfd.models.build import build_detector
from tests.conftest import CONF_DIR, compose_train


@pytest.fixture
def saved_tiny_clip(tmp_path):
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        patch_size=16,
        image_size=48,
    )
    model = CLIPVisionModel(config).eval()
    processor = CLIPImageProcessor(
        size={"shortest_edge": 48},
        crop_size={"height": 48, "width": 48},
        resample=2,
        image_mean=[0.1, 0.2, 0.3],
        image_std=[0.4, 0.5, 0.6],
    )
    model.save_pretrained(tmp_path / "tiny")
    processor.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny", model


def test_local_folder_reproduces_the_saved_model(saved_tiny_clip):
    folder, reference = saved_tiny_clip
    cfg = compose_train(
        ["backbone=clip_vit_b16", f"backbone.name_or_path={folder}", "backbone.pretrained=true"]
    )
    detector, _ = build_detector(cfg)
    backbone = detector.backbone.eval()
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        expected = reference(pixel_values=x).pooler_output
        torch.testing.assert_close(backbone(x), expected, rtol=0, atol=0)
    # input geometry and statistics come from the folder's preprocessor_config.json
    spec = backbone.input_spec
    assert spec.size == (48, 48) and spec.resample == 2
    assert spec.mean == pytest.approx((0.1, 0.2, 0.3)) and spec.std == pytest.approx(
        (0.4, 0.5, 0.6)
    )
    assert backbone.feature_dim == 32


@pytest.mark.parametrize("pretrained", [True, False], ids=["from_folder", "random"])
def test_attention_kernel_is_the_configured_one_and_sdpa_matches_eager(saved_tiny_clip, pretrained):
    folder, _ = saved_tiny_clip
    outputs = {}
    for kernel in ("sdpa", "eager"):
        cfg = compose_train(
            [
                "backbone=clip_vit_b16" if pretrained else "backbone=tiny_clip",
                f"backbone.name_or_path={folder}",
                f"backbone.pretrained={str(pretrained).lower()}",
                f"backbone.attn_implementation={kernel}",
            ]
        )
        torch.manual_seed(0)
        detector, _ = build_detector(cfg)
        backbone = detector.backbone.eval()
        assert backbone.model.config._attn_implementation == kernel
        size = backbone.input_spec.size
        with torch.no_grad():
            outputs[kernel] = backbone(
                torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
            )
    torch.testing.assert_close(outputs["sdpa"], outputs["eager"], rtol=1e-4, atol=1e-5)


def test_random_backbone_takes_geometry_from_its_config():
    cfg = compose_train(["backbone=clip_vit_l14_336", "backbone.pretrained=false"])
    with torch.device("meta"):
        detector, _ = build_detector(cfg)
    spec = detector.backbone.input_spec
    assert spec.size == (336, 336) and spec.resample == 3
    assert spec.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))


def test_missing_local_folder_names_the_key(tmp_path):
    cfg = compose_train([f"backbone.name_or_path={tmp_path}/nope", "backbone.pretrained=true"])
    with pytest.raises(Exception, match="backbone.name_or_path"):
        build_detector(cfg)


def test_unreachable_hub_id_says_how_to_provide_a_folder(monkeypatch):
    import huggingface_hub.constants

    # offline as on the development machines, without waiting for network retries
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cfg = compose_train(
        ["backbone=clip_vit_l14", "backbone.name_or_path=openai/clip-vit-large-patch14"]
    )
    with pytest.raises(Exception, match=r"openai/clip-vit-large-patch14.*--local-dir"):
        build_detector(cfg)


def test_dinov2_feature_is_the_normalized_cls(tmp_path):
    overrides = [
        "backbone=dinov2_vit_b14",
        "backbone.pretrained=false",
        "backbone.architecture.hidden_size=32",
        "backbone.architecture.num_hidden_layers=2",
        "backbone.architecture.num_attention_heads=2",
        "backbone.architecture.image_size=28",
        "peft=ln",
    ]
    detector, _ = build_detector(compose_train(overrides))
    trainable = [
        n for n, p in detector.named_parameters() if p.requires_grad and n.startswith("backbone.")
    ]
    # DINOv2's LayerNorms: norm1 and norm2 of 2 layers plus the final layernorm, weight + bias each
    assert len(trainable) == (2 * 2 + 1) * 2
    assert detector.backbone(torch.randn(2, 3, 28, 28)).shape == (2, 32)


# ---------------------------------------------------------------- every conf/backbone option

BACKBONES = sorted(p.stem for p in (CONF_DIR / "backbone").glob("*.yaml"))
# Tiny dimensions per architecture family (model_type): every option is built at this size
# with random weights and run forward. A backbone of a new family needs its row here.
TINY = {
    "clip_vision_model": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 64,
    },
    "siglip_vision_model": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
    },
    "dinov2": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 28,
    },
    "convnext": {"hidden_sizes": [8, 16, 24, 32], "depths": [1, 1, 1, 1], "image_size": 64},
    "dinov2_with_registers": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 28,
    },
    "dinov3_vit": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
    },
    "timm_vit": {  # Perception Encoder (and timm's plain ViT) in timm's layout
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "patch_size": 16,
        "image_size": 32,
        "attn_pool_num_heads": 2,
    },
}


def _override(value) -> str:
    return "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_option_builds_tiny_and_runs_forward(name):
    arch = OmegaConf.load(CONF_DIR / "backbone" / f"{name}.yaml").architecture
    assert arch.model_type in TINY, (
        f"conf/backbone/{name}.yaml: add tiny dims for {arch.model_type}"
    )
    # the family's tiny dims that this option's architecture has (timm_vit's pooling head
    # sizes only where it pools with attention)
    tiny = {k: v for k, v in TINY[arch.model_type].items() if k in arch}
    overrides = [f"backbone={name}", "backbone.pretrained=false", "peft=ln", "head=linear_norm"]
    overrides += [f"backbone.architecture.{k}={_override(v)}" for k, v in tiny.items()]
    torch.manual_seed(0)
    detector, objective = build_detector(compose_train(overrides))
    width = tiny.get("hidden_size") or tiny["hidden_sizes"][-1]
    assert detector.backbone.feature_dim == width
    size = tiny["image_size"]
    x = torch.randn(2, 3, size, size)
    assert detector.backbone(x).shape == (2, width)
    # the YAML's layernorm_modules name real LayerNorms: LN-tuning found some to train
    tuned = [n for n, p in detector.backbone.named_parameters() if p.requires_grad]
    assert tuned and all("ln_tuning_layers" in n for n in tuned), name
    out = objective(detector(x), torch.tensor([0, 1]), detector.head)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])


# ------------------------------------------- LN-tuning and LoRA counts on the real architectures

# (backbone, LayerNorm parameters LN-tuning trains, LoRA r=1 parameters on the attention output,
# backbone parameters). LN: 2 x width per LayerNorm; PE counts attn_pool.norm as GenD's substring
# rule does (norm_pre + 2 per block + norm + attn_pool.norm); DINOv3 2 per block + norm.
REAL_COUNTS = [
    ("pe_core_l14_336", 51 * 2 * 1024, 24 * 2 * 1024, 316_102_656),
    ("pe_core_b16_224", 27 * 2 * 768, 12 * 2 * 768, 92_886_528),
    ("dinov3_vitl16", 49 * 2 * 1024, 24 * 2 * 1024, 303_129_600),
    ("dinov3_vitb16", 25 * 2 * 768, 12 * 2 * 768, 85_660_416),
    ("dinov2_reg_vitl14", 49 * 2 * 1024, 24 * 2 * 1024, 304_372_736),
]


@pytest.mark.parametrize(
    ("name", "ln", "lora", "total"), REAL_COUNTS, ids=[r[0] for r in REAL_COUNTS]
)
def test_ln_tuning_and_lora_counts_on_the_real_architecture(name, ln, lora, total):
    from dfd.models.adapters import count_parameters

    head = 2 * 1024 + 2 if "l1" in name else 2 * 768 + 2
    for peft, expected in (("ln", ln), ("lora", lora)):
        cfg = compose_train(
            [
                f"backbone={name}",
                "backbone.pretrained=false",
                f"peft={peft}",
                "head=linear",
                "loss=ce",
            ]
        )
        # the meta device builds the exact architecture without allocating its weights
        with torch.device("meta"):
            detector, _ = build_detector(cfg)
        trainable, n_total = count_parameters(detector)
        assert trainable - head == expected, (name, peft)
        assert n_total == total + head + (lora if peft == "lora" else 0), (name, peft)


def _tiny_pe_overrides(folder) -> list[str]:
    dims = {k: v for k, v in TINY["timm_vit"].items()}
    return [
        "backbone=pe_core_b16_224",
        f"backbone.name_or_path={folder}",
        "backbone.pretrained=true",
        *[f"backbone.architecture.{k}={v}" for k, v in dims.items()],
    ]


def test_timm_layout_backbone_loads_a_timm_folder(tmp_path):
    """A timm hub folder (config.json with pretrained_cfg + model.safetensors in timm's key
    names, the projection `head` included) loads key for key; the input geometry is timm's eval
    transform (shortest edge size / crop_pct, centre crop); a folder of another timm model is
    refused by name."""
    import json

    from safetensors.torch import save_file

    from dfd.models.timm_vit import TimmLayoutViT, TimmViTConfig

    arch = OmegaConf.to_container(
        OmegaConf.load(CONF_DIR / "backbone" / "pe_core_b16_224.yaml").architecture
    )
    arch.pop("model_type")
    arch.update(TINY["timm_vit"])
    torch.manual_seed(3)
    reference = TimmLayoutViT(TimmViTConfig(**arch)).eval()
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    state["head.weight"] = torch.randn(32, 32)  # PE's CLIP projection: not part of the feature
    folder = tmp_path / "pe"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    pretrained_cfg = {
        "input_size": [3, 32, 32],
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": [0.1, 0.2, 0.3],
        "std": [0.4, 0.5, 0.6],
    }
    config = {"architecture": "vit_pe_core_base_patch16_224", "pretrained_cfg": pretrained_cfg}
    (folder / "config.json").write_text(json.dumps(config))
    detector, _ = build_detector(compose_train(_tiny_pe_overrides(folder)))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            detector.backbone.eval()(x), reference(x).pooler_output, rtol=0, atol=0
        )
    spec = detector.backbone.input_spec
    assert spec.size == (32, 32) and spec.resample == 2
    assert spec.mean == pytest.approx((0.1, 0.2, 0.3))
    config["architecture"] = "vit_pe_core_large_patch14_336"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match="vit_pe_core_large_patch14_336"):
        build_detector(compose_train(_tiny_pe_overrides(folder)))
