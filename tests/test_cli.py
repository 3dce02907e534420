"""dfd.runtime.cli: user errors as one line (with "did you mean"), --help per command, quiet output."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

import dfd.models.backbone as backbone_module
from dfd.data.frames import FrameDataset, FrameTransform
from dfd.data.index import FrameIndex
from dfd.runtime import hub
from dfd.runtime.cli import quiet_known_warnings, user_message
from dfd.runtime.progress import progress
from tests.conftest import CONF_DIR

COMMANDS = {  # module -> its config
    "train": "train",
    "evaluate": "evaluate",
    "sweep": "sweep",
    "preprocess": "preprocess_faces",
    "predict": "predict",
    "export": "export",
    "datasets": "datasets",
    "app": "app",
    "convert": "convert",
}


def composition_error(config_name: str, overrides: list[str]) -> str | None:
    """The message dfd prints for what composing `overrides` raises."""
    with (
        initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"),
        pytest.raises(Exception) as err,
    ):
        compose(config_name=config_name, overrides=overrides)
    return user_message(err.value, config_name, overrides)


# -- did you mean ---------------------------------------------------------------------------


def test_a_misspelled_key_gets_did_you_mean():
    message = composition_error("train", ["trainer.max_epoch=3", "seed=1"])
    assert message.startswith("trainer.max_epoch=3: ")
    assert "did you mean trainer.max_epochs=3?" in message
    assert "+trainer" not in message  # never Hydra's advice to add an unused key


def test_a_misspelled_option_gets_did_you_mean_and_the_options():
    message = composition_error("train", ["head=linearr"])
    assert "head=linearr: no such option in conf/head/" in message
    assert "did you mean head=linear?" in message
    assert "arcface, linear, linear_norm" in message


def test_preprocess_dataset_word_points_to_dataset_name():
    # conf/dataset/ is the readers' group: dfd.preprocess names its output with dataset_name
    message = composition_error("preprocess_faces", ["dataset=ff", "input_dir=x"])
    assert "did you mean dataset_name=ff?" in message


def test_a_key_with_no_close_match_says_how_to_list_keys():
    message = composition_error("evaluate", ["zzzqqq=1"])
    assert "no key or option group 'zzzqqq'" in message and "--cfg job" in message


def test_missing_required_value_names_the_key():
    cfg = OmegaConf.create({"checkpoint": "???"})
    with pytest.raises(Exception) as err:
        _ = cfg.checkpoint
    assert user_message(err.value, "evaluate", []) == (
        "checkpoint is not set: pass checkpoint=<value> on the command line"
    )


# -- unwrapping -----------------------------------------------------------------------------


def test_errors_from_a_config_target_are_unwrapped_to_their_message():
    cfg = OmegaConf.create({"_target_": "dfd.preprocess.sampling.sample_frame_indices"})
    with pytest.raises(InstantiationException) as err:
        instantiate(cfg, num_total=10, mode="first_n")
    assert user_message(err.value, "train", []) == (
        "frames.mode='first_n' is not one of ('fixed_num_frames', 'fixed_stride')"
    )


def test_loss_head_mismatch_is_a_user_error():
    from dfd.models.build import build_detector
    from tests.conftest import compose_train

    with pytest.raises(ValueError) as err:
        build_detector(compose_train(["loss=hypersphere", "head=linear"]))
    message = user_message(err.value, "train", [])
    assert message is not None and "head=linear_norm" in message


def test_a_dataloader_worker_error_ends_with_the_original_message(tmp_path):
    index = FrameIndex("mine", [str(tmp_path / "gone.png")], np.zeros(1), ["v"], ["real"], ["test"])
    spec = backbone_module.InputSpec((8, 8), 3, (0.5,) * 3, (0.5,) * 3)
    loader = torch.utils.data.DataLoader(FrameDataset(index, FrameTransform(spec)), num_workers=1)
    with pytest.raises(OSError) as err:
        next(iter(loader))
    assert "DataLoader worker" in str(err.value)  # what torch raises in the main process
    message = user_message(err.value, "evaluate", [])
    assert message.startswith(f"cannot read frame {tmp_path / 'gone.png'}")
    assert "Traceback" not in message
    traceback.clear_frames(err.tb)  # frees the iterator and its worker now (see test_frames)


def test_a_bug_keeps_its_traceback():
    try:
        raise RuntimeError("an internal invariant broke")
    except RuntimeError as err:
        assert user_message(err, "train", []) is None
    try:
        np.zeros(2).reshape(3)  # a ValueError raised inside a library, not by dfd
    except ValueError as err:
        assert user_message(err, "train", []) is None


def test_command_line_error_is_one_line_and_full_error_shows_the_traceback(tmp_path):
    cmd = [sys.executable, "-m", "dfd.preprocess", f"input_dir={tmp_path / 'absent'}"]
    cmd += [f"output_dir={tmp_path / 'out'}", "dataset_name=x"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [
        f"dfd.preprocess: error: input_dir={tmp_path / 'absent'} is not an existing folder"
    ]
    full = subprocess.run(
        cmd, capture_output=True, text=True, env={**env, "HYDRA_FULL_ERROR": "1"}, timeout=60
    )
    assert full.returncode == 1 and "Traceback" in full.stderr


# -- overrides Hydra's grammar rejects -----------------------------------------------------


def parse_error(overrides: list[str]) -> str | None:
    """The message dfd prints when Hydra cannot parse `overrides` (as typed after the command)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    with pytest.raises(OverrideParseException) as err:
        OverridesParser.create().parse_overrides(overrides)
    return user_message(err.value, "train", overrides)


def test_an_unquoted_shell_substitution_names_the_override_and_the_quoted_form():
    message = parse_error(["seed=1", "trainer.max_epochs=$("])
    assert message.startswith("'trainer.max_epochs=$(' is not a valid override (")
    assert "'trainer.max_epochs=\"$(\"'" in message


def test_a_list_split_by_the_shell_is_put_back_together_in_quotes():
    # `sweep.seeds=[0, 1]` typed without quotes: the shell hands Hydra two arguments
    message = parse_error(["sweep.seeds=[0,", "1]", "--cfg", "job"])
    assert message.startswith("'sweep.seeds=[0,' is not a valid override")
    assert message.endswith("quote the whole override: 'sweep.seeds=[0, 1]'")


def test_a_list_element_holding_an_equals_sign_gets_its_own_quotes():
    message = parse_error(["overrides=[trainer.num_workers=4,data.on_error=skip]"])
    assert """'overrides=["trainer.num_workers=4","data.on_error=skip"]'""" in message


def test_flag_values_are_not_taken_for_overrides():
    message = parse_error(["--cfg", "job", "x=`ls`"])
    assert message.startswith("'x=`ls`' is not a valid override")


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_grammar_error_on_the_command_line_is_one_line(command):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run(
        [sys.executable, "-m", f"dfd.{command}", "trainer.max_epochs=$("],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dfd.{command}: error: 'trainer.max_epochs=$('")


# -- offline hub ids fail at once -----------------------------------------------------------


def test_offline_hub_id_not_in_the_cache_fails_before_any_download(monkeypatch):
    monkeypatch.setattr(backbone_module, "hub_reachable", lambda: False)
    monkeypatch.setattr(backbone_module, "in_hub_cache", lambda repo_id: False)

    class NeverLoaded:
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            raise AssertionError("from_pretrained must not be reached offline")

    with pytest.raises(OSError, match="hub cannot be reached") as err:
        backbone_module._load_pretrained(NeverLoaded, "openai/clip-vit-large-patch14")
    assert "backbone.name_or_path=<folder>" in str(err.value)


def test_offline_hub_id_in_the_cache_loads_without_asking_the_hub(monkeypatch):
    monkeypatch.setattr(backbone_module, "hub_reachable", lambda: False)
    monkeypatch.setattr(backbone_module, "in_hub_cache", lambda repo_id: True)
    seen = {}

    class Cached:
        @classmethod
        def from_pretrained(cls, source, **kwargs):
            seen.update(kwargs)
            raise OSError("stop here")

    with pytest.raises(OSError):
        backbone_module._load_pretrained(Cached, "openai/clip-vit-base-patch16")
    assert seen["local_files_only"] is True


def test_hub_offline_switch_means_unreachable(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub.hub_reachable() is False
    assert hub.in_hub_cache("no-such-owner/no-such-model-for-dfd-tests") is False


# -- --help ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_says_what_the_command_does_and_lists_only_its_groups(command):
    overrides = {
        "evaluate": ["checkpoint=x"],
        "predict": ["checkpoint=x", "input=x"],
        "convert": ["input=x", "output=y"],
    }
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name=COMMANDS[command],
            overrides=overrides.get(command, []),
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    text = cfg.hydra.help.template
    assert text.startswith(f"dfd.{command}: ")
    own = {g for g in cfg.hydra.runtime.choices if not g.startswith("hydra")}
    listed = set(re.findall(r"^  ([\w/]+)= ", text, flags=re.MULTILINE))
    assert listed == own
    for group in own:  # every option file of the group is listed
        for option in (CONF_DIR / group).glob("*.yaml"):
            assert option.stem in text
    for foreign in {"sweep", "dataset", "faces/detector", "preprocess"} - own:
        assert f"  {foreign}= " not in text
    # every key the help names as an option exists in that command's config
    main_options = text.split("Main options:")[1].split("Option groups")[0]
    for key in re.findall(r"""(?<![\w/.'"{\[,])([a-z_][\w.]*)=""", main_options):
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        assert key in own or leaf in list(node.keys()), key  # `in` skips ??? values


# -- quiet output ---------------------------------------------------------------------------


def test_known_third_party_warnings_are_filtered_others_are_not():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()
        warnings.warn(
            "`is_gradient_checkpointing` is deprecated and will be removed in v6.",
            FutureWarning,
            stacklevel=1,
        )
        warnings.warn("something the user should see", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something the user should see"]


def test_progress_off_a_terminal_is_one_line_per_pass():
    log = io.StringIO()  # a file or a pipe: no isatty
    for epoch in range(2):
        bar = progress(range(30), desc=f"epoch {epoch + 1}/2", unit="batch", file=log)
        for _ in bar:
            bar.set_postfix(loss=0.5)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in log.getvalue()
    assert lines[0].startswith("epoch 1/2: 30/30 in ") and lines[0].endswith("loss=0.5")


def test_progress_on_a_terminal_redraws_at_a_sane_interval():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = progress(range(3), desc="x", file=Terminal())
    assert bar.mininterval == 0.5
    bar.close()


def test_readme_states_the_real_default_data_dir():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "`paths.data_dir=/data`; every key can be overridden" not in readme
    assert "<project>/data" in readme
    paths = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "paths/default.yaml"))
    assert paths["data_dir"] == "${paths.root_dir}/data"
