"""The HTTP edge's JSON writer: numpy arrays as plain JSON numbers, float32 values kept exactly."""

from __future__ import annotations

import json

import numpy as np

from facepipe.edges.http import JsonResponse, dumps


def test_numpy_arrays_are_written_as_numbers_that_read_back_exactly() -> None:
    emb = np.random.default_rng(0).normal(size=192).astype(np.float32)
    doc = json.loads(dumps({"embedding": emb, "landmarks": [[1.5, 2.25]], "n": 3}))
    assert np.array_equal(np.asarray(doc["embedding"], np.float32), emb)
    assert doc["landmarks"] == [[1.5, 2.25]] and doc["n"] == 3


def test_the_response_is_json_with_its_status() -> None:
    r = JsonResponse({"error": {"code": "invalid_input", "message": "ü"}}, status_code=400)
    assert r.status_code == 400 and r.media_type == "application/json"
    assert json.loads(r.body) == {"error": {"code": "invalid_input", "message": "ü"}}
