"""Forked workers pin themselves to one thread even after the parent ran OpenCV in parallel."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest
import torch

from dfd.runtime.workers import one_thread_per_worker


def test_a_child_forked_after_parallel_opencv_pins_its_threads_without_hanging():
    threads = cv2.getNumThreads()
    cv2.setNumThreads(2)  # a pool of worker threads exists once a parallel call has run
    try:
        img = np.zeros((1024, 1024, 3), np.uint8)
        for _ in range(5):
            cv2.resize(img, (900, 900), interpolation=cv2.INTER_CUBIC)
        pid = os.fork()
        if pid == 0:  # the child: what a DataLoader worker's worker_init_fn does
            try:
                # the fork handler already shrank the pool: without it the pool would still
                # report 2 here (and setNumThreads below would hang, if only now and then)
                if cv2.getNumThreads() != 1:
                    os._exit(5)
                one_thread_per_worker(0)
                cv2.resize(img, (900, 900), interpolation=cv2.INTER_CUBIC)
                os._exit(0 if cv2.getNumThreads() == 1 else 3)
            except BaseException:
                os._exit(4)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.02)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung in cv2.setNumThreads")
        assert os.waitstatus_to_exitcode(status) == 0
        assert cv2.getNumThreads() == 2, "the parent's OpenCV threads are restored after the fork"
    finally:
        cv2.setNumThreads(threads)


# -- torch threads of the main process (trainer.threads, evaluate's threads) ----------------


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("cores", "expected"), [(2, 1), (4, 1), (16, "default")])
def test_null_threads_is_one_on_few_cores_and_torch_default_on_many(
    monkeypatch, restore_torch_threads, cores, expected
):
    from dfd.runtime import workers

    monkeypatch.setattr(workers, "available_cores", lambda: cores)
    monkeypatch.setattr(workers, "_TORCH_DEFAULT_THREADS", 7)
    torch.set_num_threads(1)  # a previous trial set it: null still means torch's default
    chosen = workers.set_torch_threads(None)
    assert chosen == (7 if expected == "default" else expected) == torch.get_num_threads()
    assert workers.set_torch_threads(3) == 3 == torch.get_num_threads()


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5, True])
def test_a_bad_thread_count_is_a_user_error_naming_the_key(bad, restore_torch_threads):
    from dfd.runtime.errors import UserError
    from dfd.runtime.workers import set_torch_threads

    with pytest.raises(UserError, match=r"^trainer\.threads=.* must be a positive integer"):
        set_torch_threads(bad)


def test_train_sets_the_threads_first(monkeypatch, restore_torch_threads):
    # what dfd.train and every dfd.sweep trial (dfd.sweep.objective calls dfd.train.train) run
    import dfd.engine.accelerator
    import dfd.train
    from tests.conftest import compose_train

    class Reached(Exception):
        pass

    def stop(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(dfd.engine.accelerator, "make_accelerator", stop)
    torch.set_num_threads(2)
    with pytest.raises(Reached):
        dfd.train.train(compose_train(["trainer.threads=1"]))
    assert torch.get_num_threads() == 1
