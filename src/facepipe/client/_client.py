"""A client for facepipe servers: ``Client`` (blocking) and ``AsyncClient`` (asyncio), over HTTP.

    from facepipe.client import Client
    with Client("http://127.0.0.1:9998", api_key="...") as c:
        faces = c.detect(["group.jpg"])[0].faces
        print(c.verify("a.jpg", "b.jpg").match)

``collection="name"``: every gallery call works on that collection (``/v1/collections/{name}/...``;
its own key as ``api_key``); ``collections()`` and friends manage them with a server admin key.

Both speak HTTP, or gRPC for the face and gallery operations (``grpc="host:port"``), and have the
same methods with typed results (``facepipe.client.calls``); server errors raise the
matching ``facepipe.errors`` class (``NotFound``, ``InvalidInput``, ``Overloaded``, ...). A 503 is
retried with exponential backoff (``retries`` times) before it is raised; so are the other failures
``facepipe.client.retry`` lists (a broken connection, for calls that may be sent twice).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import grpc as grpc_lib
import httpx
import numpy as np

from facepipe.client import calls
from facepipe.client import collection_calls as cc
from facepipe.client.calls import (
    Call,
    Enrolment,
    FaceInfo,
    Image,
    ImageResult,
    Match,
    Subject,
    Verification,
    face_reply,
    face_request,
    grpc_error,
    in_collection,
    server_error,
)
from facepipe.client.retry import backoff, may_resend, resend_answer, resend_code
from facepipe.errors import Overloaded, Unreachable
from facepipe.protos import face_service_pb2 as face_pb

T = TypeVar("T")


def _headers(api_key: str | None) -> dict[str, str]:
    return {"x-api-key": api_key} if api_key else {}


def _result(call: Call[T], response: httpx.Response) -> T:
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise server_error(response.status_code, body)
    return call.parse(response.content if call.raw else response.json())


def unreachable(url: Any, exc: Exception) -> Unreachable:
    """The error for a failed connection; a gRPC port given as the HTTP URL says so (an HTTP/2-only
    server answers HTTP/1.1 with a protocol error such as "illegal request line")."""
    if isinstance(exc, httpx.RemoteProtocolError):
        return Unreachable(
            f"{url} does not speak HTTP/1.1 ({exc}): is it the gRPC port? Give the HTTP port as --url "
            "(http_port, 9998 by default); the gRPC port (rpc_port, 18091) is for gRPC clients"
        )
    return Unreachable(f"cannot reach {url}: {exc}")


def _request(call: Call[Any]) -> dict[str, Any]:
    return {"json": call.json, "files": call.files, "data": call.data, "params": call.params}


def _method(channel: Any, rpc: str) -> Any:
    return channel.unary_unary(
        f"/facepipe.v1.Face/{rpc}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=face_pb.FaceReply.FromString,
    )


class _Base:
    """What both clients hold: the HTTP client, the gRPC channel if asked for, retry settings.
    ``grpc="host:port"``: the face and gallery operations go over gRPC (facepipe.v1.Face), the rest
    (``infer``) over HTTP."""

    blocking = True

    def __init__(
        self,
        url: str = "http://127.0.0.1:9998",
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.05,
        grpc: str | None = None,
        collection: str | None = None,
    ) -> None:
        self.retries, self.backoff_s, self.timeout = retries, backoff_s, timeout
        self._collection = collection
        http = httpx.Client if self.blocking else httpx.AsyncClient
        self._http: Any = http(base_url=url, headers=_headers(api_key), timeout=timeout)
        self._meta = list(_headers(api_key).items())
        channel = grpc_lib.insecure_channel if self.blocking else grpc_lib.aio.insecure_channel
        self._channel: Any = channel(grpc) if grpc else None


class Client(cc.CollectionMethods, _Base):
    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        if self._channel is not None:
            self._channel.close()

    def _do(self, call: Call[T]) -> T:
        call = in_collection(call, self._collection)
        if self._channel is not None and call.rpc:
            return self._do_grpc(call)
        for attempt in range(self.retries + 1):
            try:
                r = self._http.request(call.method, call.path, **_request(call))
            except httpx.TransportError as exc:
                if attempt == self.retries or not may_resend(call, exc):
                    raise unreachable(self._http.base_url, exc) from None
            else:
                if not resend_answer(call, r) or attempt == self.retries:
                    return _result(call, r)
            time.sleep(backoff(attempt, self.backoff_s))
        raise Overloaded("unreachable")  # pragma: no cover

    def _do_grpc(self, call: Call[T]) -> T:
        request = face_request(call)
        for attempt in range(self.retries + 1):
            try:
                reply = _method(self._channel, call.rpc)(request, metadata=self._meta, timeout=self.timeout)
                return face_reply(call, reply)
            except grpc_lib.RpcError as exc:
                code = exc.code().name
                if not resend_code(call, code) or attempt == self.retries:
                    raise grpc_error(code, exc.details() or code) from None
            time.sleep(backoff(attempt, self.backoff_s))
        raise Overloaded("unreachable")  # pragma: no cover

    def detect(self, images: Sequence[Image], **params: Any) -> list[ImageResult]:
        return self._do(calls.detect(images, **params))

    def embed(self, images: Sequence[Image], **params: Any) -> list[ImageResult]:
        return self._do(calls.embed(images, **params))

    def embed_aligned(self, images: Sequence[Image]) -> np.ndarray:
        return self._do(calls.embed_aligned(images))

    def verify(self, a: Image, b: Image, threshold: float | None = None, **params: Any) -> Verification:
        return self._do(calls.verify(a, b, threshold, **params))

    def identify(
        self, images: Sequence[Image], k: int = 1, threshold: float | None = None, **params: Any
    ) -> list[ImageResult]:
        return self._do(calls.identify(images, k, threshold, **params))

    def identify_embeddings(self, embeddings: np.ndarray, k: int = 1) -> list[list[Match]]:
        return self._do(calls.identify_embeddings(embeddings, k))

    def create_subject(
        self, name: str, id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Subject:
        return self._do(calls.create_subject(name, id, metadata))

    def subject(self, sid: str) -> Subject:
        return self._do(calls.subject(sid))

    def subjects(self, offset: int = 0, limit: int = 100) -> tuple[list[Subject], int]:
        return self._do(calls.subjects(offset, limit))

    def delete_subject(self, sid: str) -> int:
        return self._do(calls.delete_subject(sid))

    def enrol(self, sid: str, images: Sequence[Image], **params: Any) -> Enrolment:
        return self._do(calls.enrol(sid, images, **params))

    def faces(self, sid: str) -> list[FaceInfo]:
        return self._do(calls.faces(sid))

    def delete_face(self, fid: int) -> None:
        return self._do(calls.delete_face(fid))

    def face_crop(self, fid: int) -> bytes:
        return self._do(calls.face_crop(fid))

    def infer(
        self, model: str, inputs: dict[str, np.ndarray], version: str | None = None
    ) -> dict[str, np.ndarray]:
        return self._do(calls.infer(model, inputs, version))


class AsyncClient(cc.AsyncCollectionMethods, _Base):
    blocking = False

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()
        if self._channel is not None:
            await self._channel.close()

    async def _do(self, call: Call[T]) -> T:
        call = in_collection(call, self._collection)
        if self._channel is not None and call.rpc:
            return await self._do_grpc(call)
        for attempt in range(self.retries + 1):
            try:
                r = await self._http.request(call.method, call.path, **_request(call))
            except httpx.TransportError as exc:
                if attempt == self.retries or not may_resend(call, exc):
                    raise unreachable(self._http.base_url, exc) from None
            else:
                if not resend_answer(call, r) or attempt == self.retries:
                    return _result(call, r)
            await asyncio.sleep(backoff(attempt, self.backoff_s))
        raise Overloaded("unreachable")  # pragma: no cover

    async def _do_grpc(self, call: Call[T]) -> T:
        request = face_request(call)
        for attempt in range(self.retries + 1):
            try:
                reply = await _method(self._channel, call.rpc)(
                    request, metadata=self._meta, timeout=self.timeout
                )
                return face_reply(call, reply)
            except grpc_lib.aio.AioRpcError as exc:
                code = exc.code().name
                if not resend_code(call, code) or attempt == self.retries:
                    raise grpc_error(code, exc.details() or code) from None
            await asyncio.sleep(backoff(attempt, self.backoff_s))
        raise Overloaded("unreachable")  # pragma: no cover

    async def detect(self, images: Sequence[Image], **params: Any) -> list[ImageResult]:
        return await self._do(calls.detect(images, **params))

    async def embed(self, images: Sequence[Image], **params: Any) -> list[ImageResult]:
        return await self._do(calls.embed(images, **params))

    async def embed_aligned(self, images: Sequence[Image]) -> np.ndarray:
        return await self._do(calls.embed_aligned(images))

    async def verify(self, a: Image, b: Image, threshold: float | None = None, **params: Any) -> Verification:
        return await self._do(calls.verify(a, b, threshold, **params))

    async def identify(
        self, images: Sequence[Image], k: int = 1, threshold: float | None = None, **params: Any
    ) -> list[ImageResult]:
        return await self._do(calls.identify(images, k, threshold, **params))

    async def identify_embeddings(self, embeddings: np.ndarray, k: int = 1) -> list[list[Match]]:
        return await self._do(calls.identify_embeddings(embeddings, k))

    async def create_subject(
        self, name: str, id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Subject:
        return await self._do(calls.create_subject(name, id, metadata))

    async def subject(self, sid: str) -> Subject:
        return await self._do(calls.subject(sid))

    async def subjects(self, offset: int = 0, limit: int = 100) -> tuple[list[Subject], int]:
        return await self._do(calls.subjects(offset, limit))

    async def delete_subject(self, sid: str) -> int:
        return await self._do(calls.delete_subject(sid))

    async def enrol(self, sid: str, images: Sequence[Image], **params: Any) -> Enrolment:
        return await self._do(calls.enrol(sid, images, **params))

    async def faces(self, sid: str) -> list[FaceInfo]:
        return await self._do(calls.faces(sid))

    async def delete_face(self, fid: int) -> None:
        return await self._do(calls.delete_face(fid))

    async def face_crop(self, fid: int) -> bytes:
        return await self._do(calls.face_crop(fid))

    async def infer(
        self, model: str, inputs: dict[str, np.ndarray], version: str | None = None
    ) -> dict[str, np.ndarray]:
        return await self._do(calls.infer(model, inputs, version))
