"""Grid ablations: each point claimed once in the study's database, whatever the workers."""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from dfd.sweep.space import parse_grid
from dfd.sweep.storage import GridClaims, open_study

ROWS = {"a": ["peft=ln"], "b": ["peft=lora"], "c": ["peft=full"], "d": []}


@functools.cache
def _initialized_optuna_store() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="dfd-test-optuna-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    optuna.storages.RDBStorage(f"sqlite:///{folder}/optuna.db")
    return folder / "optuna.db"


def fresh_optuna_storage(folder: Path) -> str:
    """An empty Optuna sqlite store in `folder`: a copy of one whose schema was made once per
    session (Optuna's schema migration of a new file takes a second, a copy milliseconds)."""
    shutil.copy(_initialized_optuna_store(), folder / "optuna.db")
    return f"sqlite:///{folder}/optuna.db"


def grid_cfg(storage: str, name: str, seeds=(0, 1)):
    return OmegaConf.create(
        {
            "storage": storage,
            "heartbeat_interval": None,
            "sweep": {
                "study_name": name,
                "direction": "maximize",
                "rows": ROWS,
                "seeds": list(seeds),
            },
        }
    )


def test_a_grid_is_rows_by_seeds_in_file_order():
    points = parse_grid({"x": ["peft=ln"], "y": "peft=lora", "z": []}, [3, 1])
    assert [p.key for p in points] == [
        "x/seed=3",
        "x/seed=1",
        "y/seed=3",
        "y/seed=1",
        "z/seed=3",
        "z/seed=1",
    ]
    assert points[2].train_overrides() == ["peft=lora", "seed=3"]


@pytest.mark.parametrize(
    ("rows", "seeds", "message"),
    [
        ({}, [0], "sweep.rows"),
        ({"x": []}, [], "sweep.seeds"),
        ({"x": []}, [0, 0], "twice"),
        ({"x": ["seed=3"]}, [0], "sets seed"),
        ({"x": [1]}, [0], "sweep.rows.x"),
    ],
)
def test_a_malformed_grid_fails_naming_the_key(rows, seeds, message):
    with pytest.raises(ValueError, match=message):
        parse_grid(rows, seeds)


def test_a_point_is_claimed_once_and_freed_only_by_a_failed_trial(tmp_path):
    storage = fresh_optuna_storage(tmp_path)
    study = open_study(grid_cfg(storage, "claims"), "val/video_auc")
    assert study.metric_names == ["val/video_auc"]  # optuna-dashboard's axis label
    first, second = GridClaims(storage, study), GridClaims(storage, study)
    assert first.claim("a/seed=0") and not second.claim("a/seed=0")
    assert not first.claim("a/seed=0")  # a claim is not re-entrant either

    trial = study.ask()
    first.bind("a/seed=0", trial.number)
    assert not second.claim("a/seed=0")  # RUNNING: taken
    study.tell(trial, state=TrialState.FAIL)
    assert second.claim("a/seed=0")  # its trial failed: free again, for one worker only
    assert not first.claim("a/seed=0")
    retry = study.ask()
    second.bind("a/seed=0", retry.number)
    study.tell(retry, 0.9)
    assert not first.claim("a/seed=0")  # COMPLETE: taken for good
    assert second.holders() == {"a/seed=0": retry.number}
    with pytest.raises(RuntimeError, match="not claimed by this process"):
        first.bind("a/seed=0", retry.number)
    first.close(), second.close()


def _grid_worker(storage: str, name: str, ready: str, log: str) -> None:
    """One sweep worker of the two-process test: the real grid loop and objective, with
    training replaced by a short sleep that records which point this process trained."""
    import dfd.sweep.objective as objective
    from dfd.sweep.grid import run_grid

    def fake_train(ctx, trial, overrides, name, tags, prune):
        with open(log, "a") as f:
            f.write(trial.user_attrs["point"] + "\n")
        time.sleep(0.1)
        return 0.5

    objective.train_trial = fake_train
    Path(ready).touch()
    while len(list(Path(ready).parent.glob("*.ready"))) < 2:  # start together
        time.sleep(0.01)
    study = open_study(grid_cfg(storage, name), "val/video_auc")
    claims = GridClaims(storage, study)
    run_grid(study, parse_grid(ROWS, [0, 1]), claims, ctx=None, catch=())
    claims.close()


def test_two_workers_started_together_train_each_grid_point_once(tmp_path):
    storage = fresh_optuna_storage(tmp_path)
    spawn = multiprocessing.get_context("spawn")
    workers = [
        spawn.Process(
            target=_grid_worker,
            args=(storage, "two", str(tmp_path / f"{i}.ready"), str(tmp_path / f"{i}.log")),
        )
        for i in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    trained = [(tmp_path / f"{i}.log").read_text().split() for i in range(2)]
    every = [p.key for p in parse_grid(ROWS, [0, 1])]
    assert sorted(trained[0] + trained[1]) == sorted(every)  # each point once, none twice
    assert trained[0] and trained[1]  # and both workers took part
    study = optuna.load_study(study_name="two", storage=storage)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.user_attrs["point"] for t in done) == sorted(every)
    assert len(study.trials) == len(every)  # no trial was started and thrown away
    for t in done:
        assert t.params == {
            "row": t.user_attrs["point"].split("/")[0],
            "seed": int(t.user_attrs["point"][-1]),
        }


GRID_SPACE = {"peft": ["ln", "lora"], "trainer.optimizer.lr": [0.001, 0.01]}


def grid_sampler_cfg(storage: str, name: str):
    return OmegaConf.create(
        {
            "storage": storage,
            "heartbeat_interval": None,
            "sweep": {
                "study_name": name,
                "direction": "maximize",
                "n_trials": 10,
                "sampler": {
                    "_target_": "optuna.samplers.GridSampler",
                    "search_space": GRID_SPACE,
                    "seed": 0,
                },
                "space": {
                    "peft": ["ln", "lora"],
                    "trainer.optimizer.lr": {"choices": [1e-3, 1e-2]},
                },
            },
        }
    )


def _grid_search_worker(storage: str, name: str, ready: str, log: str) -> None:
    """One worker of a study whose own sampler is Optuna's GridSampler: dfd's search objective
    and the claimed grid search, training replaced by a record of what this process trained."""
    import dfd.sweep.objective as objective
    from dfd.sweep.grid import GRID_SEARCH_TAKEN, run_grid_search
    from dfd.sweep.run import _grid_sampler_space
    from dfd.sweep.space import parse_space

    def fake_train(ctx, trial, overrides, name, tags, prune):
        with open(log, "a") as f:
            f.write(" ".join(overrides) + "\n")
        time.sleep(0.1)
        return 0.5

    objective.train_trial = fake_train
    cfg = grid_sampler_cfg(storage, name)
    params = parse_space(cfg.sweep.space)
    space = _grid_sampler_space(cfg.sweep, params)
    ctx = objective.TrialContext([], None, Path(log).parent, name, "video_auc")
    Path(ready).touch()
    while len(list(Path(ready).parent.glob("*.ready"))) < 2:  # start together
        time.sleep(0.01)
    study = open_study(cfg, "val/video_auc")
    claims = GridClaims(storage, study, taken=GRID_SEARCH_TAKEN)
    run_grid_search(study, space, objective.SearchObjective(ctx, params), claims, 10, ())
    claims.close()


@pytest.mark.slow
def test_two_workers_on_a_grid_sampler_study_train_each_point_once(tmp_path):
    # Optuna's GridSampler alone lets two workers started together draw the same point
    storage = fresh_optuna_storage(tmp_path)
    spawn = multiprocessing.get_context("spawn")
    workers = [
        spawn.Process(
            target=_grid_search_worker,
            args=(storage, "gs", str(tmp_path / f"{i}.ready"), str(tmp_path / f"{i}.log")),
        )
        for i in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    trained = [
        line
        for i in range(2)
        if (tmp_path / f"{i}.log").is_file()
        for line in (tmp_path / f"{i}.log").read_text().splitlines()
    ]
    assert len(trained) == 4 and len(set(trained)) == 4  # each of the 2 x 2 points once
    study = optuna.load_study(study_name="gs", storage=storage)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted((t.params["peft"], t.params["trainer.optimizer.lr"]) for t in done) == [
        ("ln", 0.001),
        ("ln", 0.01),
        ("lora", 0.001),
        ("lora", 0.01),
    ]
    assert len(study.trials) == 4


def test_a_grid_sampler_space_that_misses_a_parameter_is_refused():
    from dfd.sweep.run import _grid_sampler_space
    from dfd.sweep.space import parse_space

    cfg = grid_sampler_cfg("sqlite://", "x")
    cfg.sweep.sampler.search_space = {"peft": ["ln", "lora"]}
    with pytest.raises(ValueError, match=r"missing \['trainer.optimizer.lr'\].*rows"):
        _grid_sampler_space(cfg.sweep, parse_space(cfg.sweep.space))
