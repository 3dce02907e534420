"""Forked workers pin themselves to one thread even after the parent ran OpenCV in parallel."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np

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
