"""Serving the page: load the detector (refusing a folder that names foreign code), point
Gradio's temporary folder at one of the app's own, serve until interrupted, delete it.

Everything Gradio stores (uploads, the pictures it shows) goes to that folder, created
for this process and removed when the app stops; nothing is written elsewhere. The page is
bound to 127.0.0.1 unless ``host`` says otherwise, sends no analytics and loads no fonts from
outside, so it runs offline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

from omegaconf import DictConfig

from dfd.app.scoring import MediaScorer
from dfd.engine.checkpoint import CONFIG, read_checkpoint, resolve_checkpoint_config
from dfd.engine.hf_folder import CONFIG as HF_CONFIG
from dfd.engine.restore import ScoringModel, load_scoring_model
from dfd.export.model_card import interval_text, protocol_of, protocol_summary, read_results
from dfd.predict.predictor import DEMO_WARNING, is_demo_model
from dfd.runtime.errors import UserError


def model_summary(folder: Path, loaded: ScoringModel, output_dir: str) -> str:
    """The model card's protocol as Markdown, and the test results when the run's files hold
    them: read from a checkpoint's config and ``meta.json``, or from an export folder's
    ``config.json`` (its ``dfd.protocol``)."""
    results = None
    if loaded.kind == "hf":
        protocol = json.loads((folder / HF_CONFIG).read_text())["dfd"]["protocol"]
    else:
        _, raw = read_checkpoint(folder)
        cfg = resolve_checkpoint_config(raw, output_dir, str(folder / CONFIG))
        protocol = protocol_of(folder, cfg)
        results = read_results(folder, None, protocol["selection"].get("epoch"))
    rows = (f"| {a} | {b} |" for a, b in protocol_summary(protocol))
    lines = ["| protocol | as the run recorded it |", "|---|---|", *rows]
    if results:
        lines += ["", "| target | video AUC | interval |", "|---|---:|---|"]
        for name, m in results["test"].items():
            target = protocol["targets"].get(name, {}).get("name", name)
            lines.append(f"| {target} | {m['video_auc']:.4f} | {interval_text(m)} |")
    identity = loaded.identity
    lines += ["", f"Detector: `{identity['path']}` (weights sha256 `{identity['sha256'][:16]}...`)"]
    return "\n".join(lines)


def demo_notice(loaded: ScoringModel) -> str:
    """The warning the page shows above everything for dfd's demo model (as dfd.predict
    warns): its scores of real photos say nothing; empty for any other detector."""
    return f"**Warning:** {DEMO_WARNING}" if is_demo_model(loaded.identity) else ""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")


def serve(cfg: DictConfig) -> None:
    """Load ``cfg.checkpoint`` and serve the page on ``cfg.host:cfg.port`` until interrupted."""
    if float(cfg.max_upload_mb) <= 0:
        raise UserError(f"max_upload_mb={cfg.max_upload_mb} must be a positive number")
    folder = Path(cfg.checkpoint).expanduser()
    loaded = load_scoring_model(folder, cfg.paths.output_dir)
    summary = model_summary(folder, loaded, cfg.paths.output_dir)
    max_bytes = int(float(cfg.max_upload_mb) * 2**20)
    scorer = MediaScorer(
        loaded, cfg.faces, max_bytes, int(cfg.batch_size), int(cfg.frames_shown), cfg.device
    )
    temp = Path(tempfile.mkdtemp(prefix="dfd-app-"))
    os.environ["GRADIO_TEMP_DIR"] = str(temp)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from dfd.app.page import build_page, theme  # after GRADIO_TEMP_DIR is set

    page = build_page(scorer, summary, str(cfg.title), demo_notice(loaded))
    print(f"uploads and results are kept in {temp} and deleted when the app stops")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        page.launch(
            server_name=str(cfg.host),
            server_port=int(cfg.port) if cfg.port is not None else None,
            max_file_size=max_bytes,
            share=False,
            ssr_mode=False,
            theme=theme(),
            footer_links=[],
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        page.close()
        shutil.rmtree(temp, ignore_errors=True)
