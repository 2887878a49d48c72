"""``facepipe bench`` and ``facepipe eval``."""

from __future__ import annotations
