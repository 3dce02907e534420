"""A detector as an MLflow model: a pyfunc that takes face crops and returns p(fake).

Logged with `log_detector_model` into the active MLflow run (an MLflow 3 logged model, linked
to the run and its metrics, registrable and servable by ``mlflow models serve``). The pyfunc
is this module's `_load_pyfunc` (MLflow's ``loader_module`` flavor): loading the model imports
dfd's own code and reads data, nothing else. Nothing is pickled, no code is stored in the
artifact, and what the artifact holds goes through the same checks as any folder given to
dfd (`dfd.engine.restore.load_scoring_model`: the trusted-config allow-list for a checkpoint,
the modeling-file hash for a Hugging Face folder).

What the artifact holds (``tracking.log_model``):
- ``checkpoint`` (default): the checkpoint folder as dfd writes it, the trainable tensors and
  the config, which names the frozen encoder by ``backbone.name_or_path``; loading it needs
  those weights where the model is loaded (a ViT-L/14 run stores ~0.4 MB, not 1.2 GB);
- ``full``: the `dfd.export format=hf` folder, encoder weights included: self-contained.

Input: a DataFrame with a binary column ``image``, each an encoded image file (PNG, JPEG) of an
aligned face crop (in a REST request, base64 in ``dataframe_split``). Output: a DataFrame with
column ``p_fake``, the probability of label 1 (fake), computed as `dfd.predict` computes it
(the checkpoint's input transform and precision).
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from dfd import __version__
from dfd.engine.checkpoint import CONFIG, META, RESOLVED, RUN, WEIGHTS
from dfd.engine.hf_folder import sha256_of
from dfd.engine.restore import ScoringModel, load_scoring_model
from dfd.export.hf import write_hf_folder
from dfd.runtime.errors import UserError
from dfd.scoring.faces import FaceScorer

FORMS = ("checkpoint", "full", "none")
INPUT_COLUMN, OUTPUT_COLUMN = "image", "p_fake"
MODEL_NAME = "detector"
# what the pyfunc needs besides dfd itself (whose loader module it names)
REQUIREMENTS = (
    "torch",
    "transformers",
    "peft",
    "hydra-core",
    "omegaconf",
    "safetensors",
    "pillow",
    "opencv-python-headless",
    "pandas",
    "mlflow",
)


def check_form(form: str) -> str:
    """`form` if it is one of `FORMS`; a `UserError` naming ``tracking.log_model`` otherwise."""
    if form not in FORMS:
        raise UserError(f"tracking.log_model={form!r} must be one of {', '.join(FORMS)}")
    return form


def signature():
    """Face crops in (binary ``image``), p(fake) out (double ``p_fake``)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("binary", INPUT_COLUMN)]),
        outputs=Schema([ColSpec("double", OUTPUT_COLUMN)]),
    )


def encode_crop(rgb: np.ndarray) -> bytes:
    """An RGB uint8 crop as PNG bytes: what one ``image`` cell holds."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the crop as PNG")
    return png.tobytes()


def _example_image(example: Path | None) -> bytes:
    """The input example: a crop the run scored when there is one, else a grey 256x256 crop
    (dfd.preprocess's size; the model's transform resizes it)."""
    if example is not None and Path(example).is_file():
        rgb = cv2.imread(str(example), cv2.IMREAD_COLOR)
        if rgb is not None:
            return encode_crop(cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB))
    return encode_crop(np.full((256, 256, 3), 128, np.uint8))


def _pinned(names: tuple[str, ...]) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for name in names:
        try:
            pinned.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            pinned.append(name)
    return pinned


def write_model_data(checkpoint: Path, form: str, folder: Path) -> Path:
    """The artifact's data folder for `form`: the checkpoint's files or the export folder."""
    if form == "full":
        write_hf_folder(checkpoint, folder / "hf", card={})
        return folder / "hf"
    target = folder / "checkpoint"
    target.mkdir(parents=True)
    for name in (WEIGHTS, CONFIG, RESOLVED, RUN, META):
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, target / name)
    return target


def log_detector_model(
    checkpoint: Path,
    form: str = "checkpoint",
    example: Path | None = None,
    selected_epoch: int | None = None,
    name: str = MODEL_NAME,
):
    """Log `checkpoint` as an MLflow model of the active run; return its ``ModelInfo``.

    The model is linked to the run's target metrics (every target's and the mean's ``test/*``,
    logged at step 0) and, with `selected_epoch`, to the metrics of that epoch (its source
    validation), so the UI lists it with its cross-dataset AUCs; not to the validation of
    other epochs. `example` is a crop used as input example.
    """
    import mlflow

    check_form(form)
    if form == "none":
        raise ValueError("form none logs no model")
    checkpoint = Path(checkpoint).expanduser()
    with tempfile.TemporaryDirectory(prefix="dfd-mlflow-model-") as tmp:
        data = write_model_data(checkpoint, form, Path(tmp) / "data")
        input_example = pd.DataFrame({INPUT_COLUMN: [_example_image(example)]})
        weights = sha256_of(checkpoint / WEIGHTS)
        # MLflow loads the model (through _load_pyfunc) and scores the example before it
        # stores anything: a model that cannot load here is not logged
        info = mlflow.pyfunc.log_model(
            name=name,
            loader_module=__name__,
            data_path=str(data),
            signature=signature(),
            input_example=input_example,
            pip_requirements=_pinned(REQUIREMENTS),
            metadata={
                "dfd_version": __version__,
                "dfd_form": form,
                "labels": {"0": "real", "1": "fake"},
                "checkpoint_sha256": weights,
            },
            tags={"dfd.form": form, "dfd.checkpoint_sha256": weights},
            model_type="deepfake-detector",
            # log_model links the run's metrics of this step: those of the selected epoch
            step=int(selected_epoch or 0),
        )
    if selected_epoch:
        link_metrics(info.run_id, info.model_id, step=0, prefix="test/")
    return info


def link_metrics(run_id: str, model_id: str, step: int, prefix: str) -> None:
    """Link a run's metrics of `step` whose key starts with `prefix` to a logged model, as
    ``log_model`` links those of its own step: the same values, marked with the model id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    linked = []
    for key in client.get_run(run_id).data.metrics:
        if not key.startswith(prefix):
            continue
        for m in client.get_metric_history(run_id, key):
            if m.step == step and m.model_id is None:
                linked.append(
                    Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id, run_id=run_id)
                )
    if linked:
        client.log_batch(run_id, metrics=linked)


class DetectorModel:
    """The pyfunc: p(fake) of encoded face crops, as dfd.predict scores them."""

    def __init__(self, loaded: ScoringModel, batch_size: int = 64) -> None:
        self.loaded = loaded
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size

    def predict(self, model_input: Any, params: dict | None = None) -> pd.DataFrame:
        """``p_fake`` per row of `model_input` (a DataFrame with column ``image``, or a list
        of encoded images)."""
        if isinstance(model_input, pd.DataFrame):
            if INPUT_COLUMN not in model_input.columns:
                raise ValueError(
                    f"the input needs a column {INPUT_COLUMN!r} of encoded face crops; "
                    f"it has {list(model_input.columns)}"
                )
            images = list(model_input[INPUT_COLUMN])
        else:
            images = list(model_input)
        scorer = FaceScorer(
            self.loaded.detector, self.device, self.batch_size, self.loaded.precision
        )
        rows = [_Row() for _ in images]
        for i, (row, image) in enumerate(zip(rows, images, strict=True)):
            scorer.add(row, decode_crop(image, i))
        scorer.finish()
        return pd.DataFrame({OUTPUT_COLUMN: [r.p_fake for r in rows]})


class _Row:
    p_fake: float | None = None


def decode_crop(image: Any, row: int) -> np.ndarray:
    """An encoded image (bytes, or base64 text) as an RGB uint8 array; ValueError naming the row."""
    if isinstance(image, str):
        image = base64.b64decode(image)
    if not isinstance(image, bytes | bytearray | memoryview):
        raise ValueError(f"row {row}: {INPUT_COLUMN} must be an encoded image file's bytes")
    bgr = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"row {row}: {INPUT_COLUMN} is not an image file that decodes")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _load_pyfunc(data_path: str, model_config: dict | None = None) -> DetectorModel:
    """MLflow's entry to the model: the artifact's data folder, checked as dfd checks any."""
    return DetectorModel(load_scoring_model(Path(data_path)))
