"""facepipe: face-recognition serving with batched pipelines, seed-compatible and KServe v2 APIs."""

__version__ = "0.1.0"
