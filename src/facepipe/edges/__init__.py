"""Wire formats: HTTP (Starlette) and gRPC edges for the seed protocol, KServe v2 and ``/v1``."""
