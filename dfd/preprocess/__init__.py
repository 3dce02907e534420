"""Face preprocessing: videos or image folders -> aligned 256x256 face crops (DeepfakeBench geometry).

Run it as ``python -m dfd.preprocess input_dir=... output_dir=... dataset=...``
(config: ``conf/preprocess_faces.yaml``; the face pipeline it shares with ``dfd.predict``:
``conf/faces/``, detectors in ``conf/faces/detector/``).
"""

from dfd.preprocess.alignment import align_face, arcface_template, similarity_transform
from dfd.preprocess.faces import Face, FaceDetector, largest_face
from dfd.preprocess.pipeline import FacePipeline, FaceSettings
from dfd.preprocess.runner import run_preprocessing
from dfd.preprocess.sampling import sample_frame_indices

__all__ = [
    "Face",
    "FaceDetector",
    "FacePipeline",
    "FaceSettings",
    "align_face",
    "arcface_template",
    "largest_face",
    "run_preprocessing",
    "sample_frame_indices",
    "similarity_transform",
]
