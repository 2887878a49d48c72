"""A face op of your own, added to facepipe's /v1 face DAG without touching facepipe's code: the
sharpness of each aligned face (variance of its Laplacian, in numpy; low means blurry).

    facepipe serve --app examples.custom_op.sharpness:app --config examples/custom_op/config.yml
    curl -s -F file=@photo.jpg http://127.0.0.1:9998/v1/detect
    # -> ... "faces": [{"box": ..., "extra": {"sharpness": 412.7}}]

The node reads ``align`` (the photos with their aligned 112x112 crops) and returns, per photo, one
value per face; it runs beside ``embed`` and ``liveness`` and is joined into each face's ``extra``.
Its workers and batching come from config.yml's ``op.sharpness`` like any op's.
"""

import numpy as np

from facepipe.engine import App, FunctionOp, Node


def laplacian_variance(crop: np.ndarray) -> float:
    g = crop.astype(np.float32).mean(axis=2)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return round(float(lap.var()), 2)


def sharpness(photos: list) -> list[list[float]]:  # a batch of photos -> per photo, per face
    return [[laplacian_variance(face.crop) for face in photo.faces] for photo in photos]


def sharpness_op() -> FunctionOp:  # the op factory: each worker builds its own
    return FunctionOp(sharpness)


app = App(face_ops=[Node("sharpness", sharpness_op, inputs=("align",))])
