"""A KServe model whose runtime refuses an input that passed the declared checks answers InvalidInput
for that request only (issue 22 item 7: the model's error was passed through as a 500)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepipe.errors import InvalidInput
from facepipe.models.repository import Repository
from facepipe.runtime import CPU
from facepipe.runtime.tensor_model import TensorOp


def test_a_shape_the_model_refuses_fails_only_its_own_request(models_dir: Path) -> None:
    op = TensorOp(Repository(models_dir).bundle("mtcnn-pnet"), CPU)  # input [-1, -1, -1, 3]
    op.setup()
    ok = np.zeros((1, 24, 24, 3), np.float32)
    tiny = np.zeros((1, 1, 1, 3), np.float32)  # fits the declared shape; P-Net's 3x3 convs cannot run it
    out = op([{"pnet/input": ok}, {"pnet/input": tiny}])
    assert isinstance(out[1], InvalidInput) and "refused the input" in out[1].message
    assert isinstance(out[0], dict) and out[0]["pnet/prob1"].shape[0] == 1
