import numpy as np
import pytest

from facepipe.models.bundle import Preprocess


@pytest.mark.parametrize(
    ("mean", "std"),
    [([127.5] * 3, [128.0] * 3), ([0.0] * 3, [255.0] * 3), ([123.7, 116.3, 103.5], [58.4, 57.1, 57.4])],
)
def test_normalize_equals_numpy_broadcasting_bit_for_bit(mean: list[float], std: list[float]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (4, 112, 96, 3), dtype=np.uint8)
    want = (pixels.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    got = Preprocess(mean=mean, std=std).normalize(pixels)
    assert got.dtype == np.float32 and got.shape == pixels.shape
    assert np.array_equal(got, want)
    assert np.array_equal(Preprocess(mean=mean, std=std).normalize(pixels[0]), want[0])  # one image


def test_normalize_leaves_its_input_alone() -> None:
    pixels = np.full((2, 2, 3), 200, np.uint8)
    Preprocess(mean=[100.0] * 3, std=[2.0] * 3).normalize(pixels)
    assert (pixels == 200).all()
