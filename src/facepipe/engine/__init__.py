"""The generic pipeline engine: ops, batching stages and pipelines. Knows nothing of faces, HTTP or models."""
