"""The Gradio page: an upload box, the faces boxed with their p(fake), a video's score and its
per-frame curve, a table of every face, and the model card's protocol summary.

Imported only after `dfd.app.server` pointed Gradio's temporary folder at the app's own
(``GRADIO_TEMP_DIR`` is read when Gradio is imported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from matplotlib.figure import Figure

from dfd.app.scoring import MediaResult, MediaScorer

TABLE_HEADERS = ["frame", "face", "status", "p(fake)", "box (x1, y1, x2, y2)"]
NOTICE = (
    "A score is evidence, not a verdict: p(fake) is this detector's estimate that a face was "
    "manipulated, measured only on the test sets named below. Faces are found and aligned "
    "as in the detector's training; files are kept in a temporary folder and deleted when "
    "the app stops."
)


def result_markdown(result: MediaResult, name: str, aggregate: str = "mean") -> str:
    """The headline: the refusal, or the video score / the largest face's p(fake)."""
    if result.message and not result.rows:
        return f"**Not scored.** {result.message}"
    scored = [r for r in result.rows if r.status == "ok"]
    if result.message:
        return f"**{result.message}**"
    if result.kind == "video":
        frames = len({r.frame for r in scored if r.face == 0})
        return (
            f"**Video score: p(fake) = {result.video_score:.6f}** ({name}: the {aggregate} "
            f"of the largest face's p(fake) over {frames} sampled frames; every face of each "
            f"frame is boxed)"
        )
    faces = "\n".join(
        f"- face {r.face + 1}: p(fake) = {r.p_fake:.6f}"
        for r in sorted(scored, key=lambda r: r.face)
    )
    return (
        f"**Largest face: p(fake) = {scored[0].p_fake:.6f}** ({name}, {len(scored)} "
        f"face{'s' if len(scored) != 1 else ''} found)\n\n{faces}"
    )


def curve_figure(result: MediaResult) -> Figure | None:
    """p(fake) of each sampled frame's largest face, with the video score and 0.5 marked."""
    points = result.curve()
    if result.kind != "video" or not points:
        return None
    figure = Figure(figsize=(7, 2.6), layout="constrained")
    ax = figure.subplots()
    frames, values = zip(*points, strict=True)
    ax.plot(frames, values, marker="o", label="largest face")
    ax.axhline(result.video_score, color="tab:red", label=f"video score {result.video_score:.4f}")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("frame")
    ax.set_ylabel("p(fake)")
    ax.legend(loc="upper right", fontsize="small")
    return figure


def table_rows(result: MediaResult) -> list[list[Any]]:
    rows = []
    for r in result.rows:
        box = (
            ""
            if r.box_x1 is None
            else f"{r.box_x1:.0f}, {r.box_y1:.0f}, {r.box_x2:.0f}, {r.box_y2:.0f}"
        )
        p = "" if r.p_fake is None else f"{r.p_fake:.6f}"
        frame = "" if r.frame is None else r.frame
        face = "" if r.face is None else r.face + 1
        rows.append([frame, face, r.status, p, box])
    return rows


def handle_upload(scorer: MediaScorer, path: str | None) -> tuple:
    """What the page shows for one upload: headline, boxed pictures, curve, table."""
    if not path:
        return "", [], gr.update(value=None, visible=False), []
    result = scorer.score(Path(path))
    name = Path(path).name
    figure = curve_figure(result)
    return (
        result_markdown(result, name, scorer.loaded.aggregate),
        result.pictures,
        gr.update(value=figure, visible=figure is not None),
        table_rows(result),
    )


def build_page(scorer: MediaScorer, summary: str, title: str, warning: str = "") -> gr.Blocks:
    """The page, wired to `scorer`; `summary` is the model card's protocol (Markdown),
    `warning` a line shown under the title (the demo model's, `server.demo_notice`)."""
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(1800, 3600)) as page:
        gr.Markdown(f"# {title}\n\n{NOTICE}")
        if warning:
            gr.Markdown(warning, elem_id="dfd-warning")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Image or video", type="filepath", elem_id="dfd-upload")
                result = gr.Markdown(elem_id="dfd-result")
            with gr.Column(scale=2):
                pictures = gr.Gallery(
                    label="Faces (boxed with their p(fake))", columns=2, elem_id="dfd-faces"
                )
        curve = gr.Plot(label="p(fake) per frame", visible=False, elem_id="dfd-curve")
        table = gr.Dataframe(headers=TABLE_HEADERS, label="Every face", elem_id="dfd-table")
        with gr.Accordion("The detector and how it was measured", open=True):
            gr.Markdown(summary, elem_id="dfd-protocol")
        upload.upload(
            lambda p: handle_upload(scorer, p),
            inputs=upload,
            outputs=[result, pictures, curve, table],
        )
    return page


def theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts: the page fetches nothing from outside."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "monospace"],
    )
