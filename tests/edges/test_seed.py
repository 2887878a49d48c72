import numpy as np
import pytest

from facepipe.edges.seed import feed_of, numpy_repr, parse_json
from facepipe.errors import InvalidInput

NS = {"array": np.array, "float16": np.float16, "float32": np.float32, "float64": np.float64}


def read_back(text: str) -> np.ndarray:
    return eval(text, NS)  # the seed's clients read the text as a numpy expression


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 128), (3,), (2, 2, 3)])
def test_floats_read_back_exactly(dtype: type, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal(shape) * rng.choice([1e-4, 1e-2, 1.0, 1e3], shape)).astype(dtype)
    text = numpy_repr(arr)
    assert text.startswith("array([") and text.endswith(f"dtype={np.dtype(dtype).name})")
    back = np.asarray(read_back(text), dtype)
    assert back.shape == arr.shape and np.array_equal(back, arr)


def test_non_contiguous_and_non_finite_arrays() -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    assert np.array_equal(read_back(numpy_repr(arr)), arr)
    assert numpy_repr(np.array([np.nan, np.inf], np.float32)) == "array([nan, inf], dtype=float32)"
    assert numpy_repr(np.array([1, 2], np.int64)) == "array([1, 2])"


def test_bad_requests_name_the_problem() -> None:
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_json(b"{")
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_json(b"[1]")
    with pytest.raises(InvalidInput, match="same length"):
        feed_of(["image"], [])
    with pytest.raises(InvalidInput, match="strings"):
        feed_of(["image"], [1])
    assert parse_json(b'{"key": ["image"], "value": ["x"], "logid": 7}') == (7, {"image": "x"})
