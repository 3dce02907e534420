"""Checkpoint folders: canonical keys across transformers versions, and untrusted configs refused."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch
from accelerate.utils import set_seed
from omegaconf import OmegaConf
from safetensors.torch import save_file

from dfd.engine.checkpoint import (
    canonical_key,
    load_trainable,
    save_checkpoint,
    trainable_state,
)
from dfd.engine.restore import load_detector
from dfd.engine.trusted_config import UntrustedConfigError
from dfd.models.build import build_detector
from tests.conftest import compose_train

V4 = "backbone.model.base_model.model.vision_model.encoder.layers.0.layer_norm1.ln_tuning_layers.default.weight"
V5 = "backbone.model.base_model.model.encoder.layers.0.layer_norm1.ln_tuning_layers.default.weight"


def test_canonical_keys_are_the_same_for_transformers_4_and_5_layouts():
    assert canonical_key(V4) == canonical_key(V5)
    assert (
        canonical_key(V5) == "backbone.encoder.layers.0.layer_norm1.ln_tuning_layers.default.weight"
    )
    assert canonical_key(canonical_key(V4)) == canonical_key(V4)
    assert canonical_key("head.fc.weight") == "head.fc.weight"
    assert canonical_key("backbone.model.vision_model.post_layernorm.weight") == (
        "backbone.post_layernorm.weight"
    )


@pytest.mark.parametrize(
    "name",
    [
        "backbone.model.model.layer.0.norm1.weight",  # DINOv3ViTModel's own `model.layer`
        "backbone.model.base_model.model.model.layer.0.norm1.ln_tuning_layers.default.weight",
    ],
)
def test_canonical_keys_of_dinov3_keep_its_own_model_and_are_idempotent(name):
    once = canonical_key(name)
    assert once.startswith("backbone.model.layer.0.norm1.")
    assert canonical_key(once) == once


@pytest.fixture(scope="module")
def ln_model():
    cfg = compose_train(["backbone.pretrained=false"])
    set_seed(cfg.seed)  # as training does: the random frozen weights come from the seed
    model, _ = build_detector(cfg)
    return cfg, model


@pytest.mark.parametrize("layout", ["v4", "v5"])
def test_a_checkpoint_written_in_either_layout_loads(ln_model, layout):
    _, model = ln_model
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    state = {}
    for n in names:
        key = n
        if layout == "v4" and n.startswith("backbone.model.base_model.model."):
            key = n.replace("base_model.model.", "base_model.model.vision_model.", 1)
        state[key] = torch.randn_like(dict(model.named_parameters())[n])
    load_trainable(model, state)
    loaded = trainable_state(model)
    for key, value in state.items():
        assert torch.equal(loaded[canonical_key(key)], value)


def _written_checkpoint(tmp_path, ln_model):
    cfg, model = ln_model
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, trainable_state(model), cfg, ["peft=ln"], {"epoch": 0})
    return folder


def test_a_written_checkpoint_rebuilds_the_same_detector(tmp_path, ln_model):
    _, model = ln_model
    folder = _written_checkpoint(tmp_path, ln_model)
    rebuilt, cfg = load_detector(folder, tmp_path / "out")
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(rebuilt.eval().logits(x), model.eval().logits(x), atol=1e-6)
    assert cfg.paths.output_dir == str(tmp_path / "out")


def test_a_checkpoint_written_before_the_objectives_moved_still_loads(tmp_path, ln_model):
    # dfd.objectives became dfd.models.objectives: a folder written before names the old path
    _, model = ln_model
    folder = _written_checkpoint(tmp_path, ln_model)
    config = folder / "config.yaml"
    text = config.read_text()
    assert "_target_: dfd.models.objectives.HypersphereObjective" in text
    config.write_text(text.replace("dfd.models.objectives.", "dfd.objectives."))
    rebuilt, cfg = load_detector(folder, tmp_path / "out")
    assert cfg.loss._target_ == "dfd.models.objectives.HypersphereObjective"
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(rebuilt.eval().logits(x), model.eval().logits(x), atol=1e-6)
    # only dfd's own former paths are renamed: any other module is still refused
    config.write_text(text.replace("dfd.models.objectives.", "os.objectives."))
    with pytest.raises(UntrustedConfigError, match="os.objectives.HypersphereObjective"):
        load_detector(folder, tmp_path / "out")


class _Tripwire:
    def __reduce__(self):
        return (open, (str(_Tripwire.path), "w"))


@pytest.mark.parametrize(
    "key, value",
    [
        ("loss", {"_target_": "pandas.read_pickle", "_args_": ["PICKLE"]}),
        ("peft", {"_target_": "os.system", "_args_": ["touch TOUCHED"]}),
        ("backbone.model_class", "os.system"),
        ("loss", "${oc.create:'{_target_: os.system, _args_: [touch TOUCHED]}'}"),
    ],
    ids=["read_pickle", "os.system", "model_class", "interpolation"],
)
def test_a_malicious_checkpoint_config_runs_nothing(tmp_path, ln_model, key, value):
    folder = _written_checkpoint(tmp_path, ln_model)
    bait = tmp_path / "bait.pkl"
    _Tripwire.path = tmp_path / "UNPICKLED"
    bait.write_bytes(pickle.dumps(_Tripwire()))
    touched = tmp_path / "TOUCHED"
    text = OmegaConf.load(folder / "config.yaml")
    value = OmegaConf.create({"v": value}).v if isinstance(value, dict) else value
    if isinstance(value, str):
        value = value.replace("TOUCHED", str(touched))
    else:
        value = OmegaConf.to_container(value)
        value["_args_"] = [
            str(bait) if a == "PICKLE" else a.replace("TOUCHED", str(touched))
            for a in value["_args_"]
        ]
    OmegaConf.update(text, key, value, force_add=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(text))

    with pytest.raises(UntrustedConfigError, match="not one of dfd's own config options"):
        load_detector(folder, tmp_path / "out")
    assert not _Tripwire.path.exists() and not touched.exists()


def _evaluate_command(folder, tmp_path) -> subprocess.CompletedProcess:
    """`python -m dfd.evaluate checkpoint=<folder>` as a user types it, without tracking."""
    command = [sys.executable, "-m", "dfd.evaluate", f"checkpoint={folder}", "tracking=none"]
    command.append(f"hydra.run.dir={tmp_path / 'run'}")
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_dfd_evaluate_refuses_it_naming_the_key_without_a_traceback(tmp_path, ln_model):
    folder = _written_checkpoint(tmp_path, ln_model)
    text = OmegaConf.load(folder / "config.yaml")
    text.loss = {"_target_": "pandas.read_pickle", "_args_": [str(tmp_path / "x.pkl")]}
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(text))
    proc = _evaluate_command(folder, tmp_path)
    assert proc.returncode != 0
    assert "loss._target_: pandas.read_pickle" in proc.stderr.strip().splitlines()[-1]


def test_an_unreadable_weights_file_is_a_clear_error(tmp_path, ln_model):
    folder = _written_checkpoint(tmp_path, ln_model)
    (folder / "trainable.safetensors").write_bytes(b"not safetensors")
    from dfd.engine.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_detector(folder)
    save_file({}, str(folder / "trainable.safetensors"))
    with pytest.raises(CheckpointError, match="missing"):
        load_detector(folder)


def _poisoned_checkpoint(tmp_path, ln_model, value: float):
    """A written checkpoint whose second tensor (by name) holds `value` in one place."""
    from safetensors.torch import load_file

    folder = _written_checkpoint(tmp_path, ln_model)
    state = load_file(str(folder / "trainable.safetensors"))
    name = sorted(state)[1]
    state[name].view(-1)[3] = value
    save_file(state, str(folder / "trainable.safetensors"))
    return folder, name


@pytest.mark.parametrize("value", [float("nan"), float("-inf")])
def test_non_finite_weights_are_refused_on_load_naming_the_tensor(tmp_path, ln_model, value):
    from dfd.engine.checkpoint import CheckpointError

    folder, name = _poisoned_checkpoint(tmp_path, ln_model, value)
    with pytest.raises(CheckpointError, match=f"tensor '{name}' holds 1 non-finite value"):
        load_detector(folder)


def test_dfd_evaluate_of_a_nan_checkpoint_exits_naming_the_tensor(tmp_path, ln_model):
    folder, name = _poisoned_checkpoint(tmp_path, ln_model, float("nan"))
    proc = _evaluate_command(folder, tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"tensor '{name}' holds 1 non-finite" in lines[0]
