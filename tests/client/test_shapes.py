"""The client's records written back as JSON have the server's shapes, field for field."""

from __future__ import annotations

import numpy as np

from facepipe.client.calls import _images, verify
from facepipe.client.shapes import to_json

FACE = {
    "box": {"x1": 10.5, "y1": 20.0, "x2": 60.25, "y2": 80.0},
    "score": 0.99871,
    "size": 49.75,
    "landmarks": [[20.0, 40.0], [45.0, 40.0], [33.0, 52.0], [24.0, 66.0], [44.0, 66.0]],
}


def test_a_detected_face_reads_back_as_the_server_wrote_it() -> None:
    doc = {"results": [{"image": 0, "width": 250, "height": 250, "faces": [FACE]}]}
    assert to_json(_images(doc)) == doc["results"]


def test_optional_parts_appear_only_when_the_server_sent_them() -> None:
    face = FACE | {
        "liveness": {"score": 0.01, "real": True},
        "embedding": [0.6, 0.8],
        "matches": [{"subject": "ada", "name": "Ada", "similarity": 0.7, "match": True, "face": 3}],
        "quality": {"score": 0.9, "sharpness": 1.2, "yaw": 3.0, "pitch": -5.0, "roll": 1.0, "size": 49.75},
        "refused": "face quality 0.100 is below min_quality 0.4; weakest signal: sharpness 0.02",
    }
    doc = {"results": [{"image": 1, "width": 9, "height": 9, "faces": [face]}]}
    assert to_json(_images(doc)) == doc["results"]
    no_match = {"results": [{"image": 0, "width": 9, "height": 9, "faces": [FACE | {"matches": []}]}]}
    assert to_json(_images(no_match))[0]["faces"][0]["matches"] == []


def test_a_verification_keeps_its_model_and_faces() -> None:
    doc = {
        "similarity": 0.71,
        "threshold": 0.38,
        "match": True,
        "model": {"name": "mobilefacenet", "version": "1"},
        "faces": [FACE, FACE],
    }
    call = verify(b"a", b"b")
    assert to_json(call.parse(doc)) == doc


def test_numpy_values_become_plain_numbers() -> None:
    assert to_json({"e": np.float32(0.5), "v": np.array([1, 2], np.float32)}) == {"e": 0.5, "v": [1.0, 2.0]}
