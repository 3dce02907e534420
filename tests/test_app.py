"""dfd.app: uploads scored as dfd.predict scores them (faces boxed, a video's score and curve),
refused with a message when too large, not media, unreadable or faceless; the page in a real
headless browser shows dfd.predict's score and writes uploads only into its temporary folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from dfd.engine.hf_folder import HFFolderError
from dfd.engine.restore import load_scoring_model
from dfd.export.model_card import NO_INTERVAL, interval_text
from dfd.runtime.cli import user_message
from tests.conftest import CONF_DIR
from tests.demo_checkpoint import trained_checkpoint
from tests.test_predict import predict, write_face_video, write_png

gr = pytest.importorskip(
    "gradio", reason="the app extra is not installed (pip install -e '.[app]')"
)
skimage_data = pytest.importorskip("skimage.data")

from dfd.app.page import curve_figure, result_markdown, table_rows  # noqa: E402
from dfd.app.scoring import MediaScorer  # noqa: E402
from dfd.app.server import model_summary, serve  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def compose_app(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="app", overrides=overrides)


@pytest.fixture(scope="module")
def checkpoint(demo_cache) -> Path:
    return trained_checkpoint(demo_cache)


@pytest.fixture(scope="module")
def scorer(checkpoint) -> MediaScorer:
    cfg = compose_app([f"checkpoint={checkpoint}"])
    return MediaScorer(load_scoring_model(checkpoint), cfg.faces, max_bytes=2 * 2**20)


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    return write_png(tmp_path_factory.mktemp("photo") / "astronaut.png", skimage_data.astronaut())


def test_a_photo_gets_its_face_boxed_with_dfd_predicts_p_fake(
    scorer, checkpoint, astronaut, tmp_path
):
    result = scorer.score(astronaut)
    assert result.kind == "image" and result.message is None
    (face,) = [r for r in result.rows if r.status == "ok"]
    (expected,) = predict(checkpoint, astronaut, tmp_path / "p.csv")
    assert abs(face.p_fake - expected.p_fake) <= 1e-6
    assert (face.box_x1, face.box_y2) == (expected.box_x1, expected.box_y2)
    (picture, caption), original = result.pictures[0], skimage_data.astronaut()
    x1, y1 = int(face.box_x1), int(face.box_y1)
    assert caption == "astronaut.png" and picture.shape == original.shape
    assert (picture[y1 + 5, x1] != original[y1 + 5, x1]).any()  # the box is drawn
    text = result_markdown(result, "astronaut.png")
    assert f"p(fake) = {expected.p_fake:.6f}" in text
    assert table_rows(result)[0][3] == f"{expected.p_fake:.6f}"


def test_a_video_gets_the_video_score_and_a_curve(scorer, checkpoint, tmp_path):
    video = write_face_video(tmp_path / "clip.mp4", 12)
    result = scorer.score(video)
    rows = predict(checkpoint, video, tmp_path / "p.csv", "all_faces=true")
    assert result.video_score == pytest.approx(rows[0].video_score, abs=1e-6)
    scored = [r for r in rows if r.status == "ok" and r.face == 0]
    assert result.curve() == [(r.frame, pytest.approx(r.p_fake, abs=1e-6)) for r in scored]
    assert 0 < len(result.pictures) <= scorer.frames_shown
    assert curve_figure(result) is not None
    assert f"Video score: p(fake) = {result.video_score:.6f}" in result_markdown(result, "clip.mp4")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.txt", b"hello", "is not an image or a video this page reads"),
        ("fake.png", b"\x89PNG but not really", "cannot be read as an image"),
        ("big.png", None, "above this page's limit of 2 MB"),
    ],
    ids=["not_media", "not_decodable", "too_large"],
)
def test_a_file_that_is_not_scored_gets_a_message(scorer, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if content is not None else b"\0" * (3 * 2**20))
    result = scorer.score(path)
    assert message in (result.message or "")
    assert message in result_markdown(result, name)
    assert not result.pictures


def test_a_photo_without_a_face_says_so(scorer, tmp_path):
    path = write_png(tmp_path / "wall.png", np.full((200, 200, 3), 120, np.uint8))
    assert "No face was found in wall.png" in scorer.score(path).message


def test_the_page_carries_the_model_cards_protocol(checkpoint, tmp_path):
    summary = model_summary(checkpoint, load_scoring_model(checkpoint), str(tmp_path))
    assert "| Checkpoint selection | dfd demo benchmark: source, split `val`" in summary
    # the results the run recorded: each target's video AUC with its bootstrap interval
    tested = json.loads((checkpoint.parent / "metrics.json").read_text())["test"]
    for metrics in tested.values():
        assert interval_text(metrics) in summary and NO_INTERVAL not in summary


def test_the_demo_model_is_announced_as_such_and_a_real_one_is_not(checkpoint):
    from dataclasses import replace

    from dfd.app.server import demo_notice

    loaded = load_scoring_model(checkpoint)
    assert "demo" in demo_notice(loaded) and "says nothing" in demo_notice(loaded)
    identity = {**loaded.identity, "backbone": "clip_vit_l14", "data": "ff_cross"}
    assert demo_notice(replace(loaded, identity=identity)) == ""


def test_a_foreign_hf_folder_is_refused_before_anything_runs(checkpoint, tmp_path):
    from tests.test_export_hf import export

    folder = tmp_path / "hf"
    export(checkpoint, folder, "check=false")
    (folder / "modeling_dfd.py").write_text("import os\nos.system('touch pwned')\n")
    with pytest.raises(HFFolderError) as err:
        serve(compose_app([f"checkpoint={folder}", f"paths.output_dir={tmp_path / 'run'}"]))
    message = user_message(err.value, "app", [])
    assert message and "\n" not in message and "not dfd's own modeling file" in message
    # and a dfd.export folder that is dfd's own is served: the summary comes from config.json
    export(checkpoint, tmp_path / "ok", "check=false")
    loaded = load_scoring_model(tmp_path / "ok")
    assert "Checkpoint selection" in model_summary(tmp_path / "ok", loaded, str(tmp_path))


# ----------------------------------------------------------- the page in a real browser


def free_port() -> int | None:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError:
        return None


def files_named(root: Path, name: str) -> list[Path]:
    return [p for p in root.rglob(name) if p.is_file()]


@pytest.mark.slow
def test_the_page_in_headless_chromium_shows_dfd_predicts_score(checkpoint, astronaut, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(
            f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install chromium)"
        )
    port = free_port()
    if port is None:
        pytest.skip("no TCP port can be bound on 127.0.0.1 here: cannot serve the page")
    (expected,) = predict(checkpoint, astronaut, tmp_path / "p.csv")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    upload = cwd / "upload" / "astronaut.png"
    upload.parent.mkdir()
    shutil.copy(astronaut, upload)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable, "-m", "dfd.app", f"checkpoint={checkpoint}", f"port={port}",
        f"paths.output_root={tmp_path / 'outputs'}",
    ]  # fmt: skip
    log_path = tmp_path / "app.log"
    with log_path.open("w") as log:
        app = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert app.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the app did not serve its page in 120 s"
            time.sleep(1)
        temp = Path(re.search(r"kept in (\S+)", log_path.read_text()).group(1))
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--headless=new", "--no-sandbox", "--disable-gpu",
                      "--disable-background-networking", "--disable-dev-shm-usage"],
            )  # fmt: skip
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            hosts = set()
            page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
            page.goto(url, wait_until="load")
            assert "Checkpoint selection" in page.locator("#dfd-protocol").inner_text()
            page.locator("#dfd-upload input[type=file]").set_input_files(str(upload))
            page.wait_for_function(
                "/p\\(fake\\) = [0-9.]+/.test(document.querySelector('#dfd-result').innerText)",
                timeout=120_000,
            )
            text = page.locator("#dfd-result").inner_text()
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            browser.close()
        shown = float(re.search(r"Largest face: p\(fake\) = ([0-9.]+)", text).group(1))
        assert abs(shown - expected.p_fake) <= 5e-7 + 1e-9, (shown, expected.p_fake)
        assert hosts == {f"127.0.0.1:{port}"}  # nothing fetched from outside
        # the upload went into the app's temporary folder, and nowhere else
        assert files_named(temp, "astronaut.png")
        assert files_named(tmp_path, "astronaut.png") == [upload]  # cwd, outputs: no copy
        assert sorted(p.name for p in cwd.iterdir()) == ["upload"]
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        app.wait(timeout=30)
    assert not temp.exists(), "the app left its temporary folder behind"
