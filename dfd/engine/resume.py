"""The resume state of a run: everything needed to continue exactly where it stopped.

Written into ``<run>/resume/`` at every epoch end (and every `trainer.resume_every_steps`
optimizer steps): trainable tensors, optimizer state and the best-so-far weights as
safetensors; scheduler state, epoch, step, position in the epoch, running sums, the RNG
states of Python, NumPy and torch of every process, the best epoch and metric and the
MLflow run id as JSON. No pickle anywhere.

Atomicity: each write is a new generation of files; ``state.json``, which names them, is
replaced last (atomically), then older generations are deleted. A crash at any moment
leaves the previous complete state readable.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file

from dfd.engine.checkpoint import atomic_save_tensors, atomic_write_text
from dfd.engine.trusted_config import current_import_paths
from dfd.runtime.redact import redact_values

STATE = "state.json"
FOLDER = "resume"
# keys allowed to differ between the interrupted run and its resumption
# data.store: where frames are read from changes no pixel (dfd.data.store)
RESUME_KEYS = (
    "trainer.resume",
    "trainer.resume_every_steps",
    "trainer.threads",  # speed only: a run may continue on another machine
    "paths.output_dir",
    "data.store",
)


class ResumeError(ValueError):
    """A resume that cannot continue the run it names."""


def rng_state() -> dict[str, Any]:
    """This process's Python, NumPy and torch (CPU and CUDA) RNG states, JSON-ready."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_unb64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda"]])


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state split into tensors (for safetensors) and the rest (for JSON)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, pstate in sd["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_state_dict(tensors: Mapping[str, torch.Tensor], rest: Mapping) -> dict:
    state: dict[int, dict] = {}
    for name, value in [*tensors.items(), *rest["scalars"].items()]:
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def comparable_config(cfg: DictConfig) -> dict:
    """The resolved config without the keys a resume may change, passwords masked (it is saved
    in the resume state)."""
    data = redact_values(OmegaConf.to_container(cfg, resolve=True))
    for dotted in RESUME_KEYS:
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return data


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """The first dotted key where two plain configs differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            here = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                return here
            found = first_difference(a[key], b[key], here)
            if found:
                return found
        return None
    return None if a == b else (where or "<root>")


@dataclass
class ResumeState:
    """A run's saved state, read back."""

    run_dir: Path
    info: dict[str, Any]
    weights: dict[str, torch.Tensor]
    best_weights: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]

    def rng(self, rank: int) -> dict:
        folder = self.run_dir / FOLDER
        name = self.info["files"]["rng"].format(rank=rank)
        return json.loads((folder / name).read_text())


def write_resume_state(
    run_dir: Path,
    generation: int,
    info: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor],
    best_weights: Mapping[str, torch.Tensor],
    optimizer: Mapping[str, torch.Tensor],
) -> None:
    """Main process: the tensors of generation `generation`, then `state.json` naming them."""
    folder = run_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "weights": f"weights-{generation}.safetensors",
        "best": f"best-{generation}.safetensors",
        "optimizer": f"optimizer-{generation}.safetensors",
        "rng": f"rng-{generation}-rank{{rank}}.json",
    }
    atomic_save_tensors(folder / files["weights"], weights)
    atomic_save_tensors(folder / files["best"], best_weights)
    atomic_save_tensors(folder / files["optimizer"], optimizer)
    atomic_write_text(
        folder / STATE, json.dumps({**info, "generation": generation, "files": files}, indent=1)
    )
    for old in folder.iterdir():
        stem = old.name.split("-")
        if len(stem) > 1 and stem[0] in ("weights", "best", "optimizer", "rng"):
            gen = stem[1].split(".")[0]
            if gen.isdigit() and int(gen) != generation:
                old.unlink(missing_ok=True)


def write_rng_state(run_dir: Path, generation: int, rank: int) -> None:
    """Every process: its own RNG states for generation `generation`."""
    folder = run_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"rng-{generation}-rank{rank}.json", json.dumps(rng_state()))


def read_resume_state(run_dir: Path) -> ResumeState:
    """Read ``<run_dir>/resume``; fail clearly when there is none."""
    folder = run_dir / FOLDER
    if not (folder / STATE).is_file():
        raise ResumeError(
            f"trainer.resume={run_dir}: no {FOLDER}/{STATE} there. Pass the folder of an "
            f"interrupted run (outputs/runs/<date>/<time>), or trainer.resume=auto"
        )
    info = json.loads((folder / STATE).read_text())
    files = info["files"]
    return ResumeState(
        run_dir=run_dir,
        info=info,
        weights=load_file(str(folder / files["weights"])),
        best_weights=load_file(str(folder / files["best"])),
        optimizer=load_file(str(folder / files["optimizer"])),
    )


def find_resumable(output_root: Path, cfg: DictConfig) -> Path | None:
    """The newest run under `output_root` whose resume state has the same config and did
    not finish: what ``trainer.resume=auto`` continues."""
    want = comparable_config(cfg)
    candidates = sorted(
        output_root.glob(f"**/{FOLDER}/{STATE}"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for state in candidates:
        info = json.loads(state.read_text())
        if info.get("finished"):
            continue
        if first_difference(info.get("config"), want) is None:
            return state.parent.parent
    return None


def check_same_config(info: Mapping, cfg: DictConfig, run_dir: Path) -> None:
    # a run interrupted before a dfd upgrade names the code its options moved from
    saved = current_import_paths(info.get("config"))
    diff = first_difference(saved, comparable_config(cfg))
    if diff is not None:
        raise ResumeError(
            f"trainer.resume={run_dir}: the config differs from the interrupted run's at "
            f"`{diff}`. Resume with the same overrides as the original run (only "
            f"{', '.join(RESUME_KEYS)} may change), or start a new run without trainer.resume."
        )


def resume_from_config(cfg: DictConfig) -> ResumeState | None:
    """The interrupted run that `trainer.resume` names (a folder, or `auto`), or None."""
    target = cfg.trainer.get("resume")
    if not target:
        return None
    if str(target) == "auto":
        found = find_resumable(Path(cfg.paths.output_root), cfg)
        if found is None:
            print("trainer.resume=auto: no unfinished run with this config; starting a new run")
            return None
        target = found
    run_dir = Path(str(target)).expanduser().resolve()
    if run_dir.name == "resume":
        run_dir = run_dir.parent
    state = read_resume_state(run_dir)
    check_same_config(state.info, cfg, run_dir)
    print(f"resuming {run_dir} after epoch {state.info['epoch']}, step {state.info['step']}")
    return state
