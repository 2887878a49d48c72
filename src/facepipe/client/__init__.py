"""The facepipe SDK: ``Client`` (blocking) and ``AsyncClient`` (asyncio) over HTTP and gRPC.

Installable alone (``pip install facepipe`` without the ``server`` extra): imports only ``errors`` and
the generated protos.
"""

from facepipe.client._client import AsyncClient, Client, unreachable
from facepipe.client.calls import (
    DetectedFace,
    Enrolment,
    FaceInfo,
    ImageResult,
    Match,
    Subject,
    Verification,
)
from facepipe.client.collection_calls import CollectionInfo

__all__ = [
    "AsyncClient",
    "Client",
    "CollectionInfo",
    "DetectedFace",
    "Enrolment",
    "FaceInfo",
    "ImageResult",
    "Match",
    "Subject",
    "Verification",
    "unreachable",
]
