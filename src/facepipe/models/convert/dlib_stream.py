"""dlib's serialisation primitives (dlib/serialize.h, dlib/float_details.h, dlib/cuda/tensor.h), read
from bytes without dlib.

- integers: a control byte (bit 7: negative, low 4 bits: byte count n, 1..8) then n little-endian
  magnitude bytes; ``0`` is ``01 00``.
- floating point: a ``float_details``: the mantissa (int64) then the exponent (int16), both as integers
  above; the value is ``mantissa * 2**exponent``; exponents 32000/32001/32002 mean +inf/-inf/NaN.
  A first byte with any of the bits 0x70 set marks the pre-2013 ASCII format, which is refused.
- strings: the length as an integer, then the bytes. bools: the ASCII byte ``'1'`` or ``'0'``.
- tensors (``resizable_tensor``): version 2, then num_samples, k, nr, nc, then k*nr*nc*num_samples
  little-endian IEEE float32 values. ``alias_tensor``: version 1 and the four sizes, no data.
"""

from __future__ import annotations

import math

import numpy as np

from facepipe.errors import ConversionError

IS_INF, IS_NINF, IS_NAN = 32000, 32001, 32002


class DlibStream:
    """A cursor over dlib-serialised bytes; every read names what it expected when it fails."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def fail(self, what: str) -> ConversionError:
        return ConversionError(f"dlib model: {what} at byte {self.pos}")

    def _take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.fail(f"stream ends inside {what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def read_int(self, what: str = "an integer") -> int:
        ctrl = self._take(1, what)[0]
        size = ctrl & 0x0F
        if ctrl & 0x70 or not 1 <= size <= 8:
            self.pos -= 1
            raise self.fail(f"bad integer control byte 0x{ctrl:02x} for {what}")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if ctrl & 0x80 else value

    def read_float(self, what: str = "a float") -> float:
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.fail(f"{what} is in dlib's old ASCII float format (not supported)")
        mantissa = self.read_int(what)
        exponent = self.read_int(what)
        if exponent == IS_INF:
            return math.inf
        if exponent == IS_NINF:
            return -math.inf
        if exponent == IS_NAN:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def read_string(self, what: str = "a string") -> str:
        size = self.read_int(what)
        if size < 0 or size > 1 << 20:
            raise self.fail(f"implausible string length {size} for {what}")
        return bytes(self._take(size, what)).decode("latin-1")

    def read_bool(self, what: str = "a bool") -> bool:
        ch = self._take(1, what)[0]
        if ch not in (ord("0"), ord("1")):
            self.pos -= 1
            raise self.fail(f"bad bool byte 0x{ch:02x} for {what}")
        return ch == ord("1")

    def expect_version(self, allowed: tuple[int, ...], what: str) -> int:
        version = self.read_int(f"the version of {what}")
        if version not in allowed:
            raise self.fail(f"{what}: version {version}, expected one of {allowed}")
        return version

    def tensor(self, what: str = "a tensor") -> np.ndarray:
        """A ``resizable_tensor`` as a float32 array of shape (num_samples, k, nr, nc)."""
        self.expect_version((2,), what)
        shape = tuple(self.read_int(what) for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.fail(f"negative size {shape} in {what}")
        count = math.prod(shape)
        raw = self._take(4 * count, what)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self, what: str = "an alias tensor") -> tuple[int, int, int, int]:
        """An ``alias_tensor``'s shape (it holds no data: it names a slice of a layer's params)."""
        self.expect_version((1,), what)
        n, k, nr, nc = (self.read_int(what) for _ in range(4))
        return n, k, nr, nc

    def at_end(self) -> bool:
        return self.pos == len(self.data)
