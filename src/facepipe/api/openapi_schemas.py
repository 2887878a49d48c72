"""The JSON schemas of the OpenAPI document (``components.schemas``): what every route answers."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: tuple[str, ...] = (), **props: Schema) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


NUM, INT, STR, BOOL = {"type": "number"}, {"type": "integer"}, {"type": "string"}, {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}
VECTOR = array(NUM)
POINTS = array(array(NUM))


def _face() -> Schema:
    box = obj(("x1", "y1", "x2", "y2"), x1=NUM, y1=NUM, x2=NUM, y2=NUM)
    live = obj(("score", "real"), score=NUM, real={**BOOL, "description": "score <= the model's cut-off"})
    angle = {**NUM, "description": "degrees, from the 5 landmarks"}
    quality = obj(
        ("score", "sharpness", "yaw", "pitch", "roll", "size", "confidence"),
        score={**NUM, "description": "0..1: the product of one ramp per signal (docs/api.md)"},
        sharpness={**NUM, "description": "Laplacian variance / grey variance of the aligned crop"},
        yaw=angle,
        pitch=angle,
        roll=angle,
        size={**NUM, "description": "shorter box side in pixels"},
        confidence={**NUM, "description": "detection score"},
    )
    return obj(
        ("box", "score", "size", "landmarks"),
        box=box,
        score={**NUM, "description": "detection score, 0..1"},
        size={**NUM, "description": "shorter box side in pixels"},
        landmarks={**POINTS, "description": "[x, y] of left eye, right eye, nose, mouth corners"},
        liveness={**live, "description": "only when liveness=true (or require_live) was asked"},
        quality=quality,
        refused={**STR, "description": "/v1/identify only: why min_quality or require_live refused it"},
        embedding={**VECTOR, "description": "unit length; /v1/embed only"},
        matches={**array(ref("Match")), "description": "/v1/identify only, best first"},
    )


def _gallery() -> dict[str, Schema]:
    model = obj(("name", "version"), name=STR, version=STR)
    record = {
        "id": INT,
        "subject": STR,
        "model": ref("Model"),
        "image_sha256": STR,
        "quality": ANY_OBJECT,
        "created": {**NUM, "description": "unix time"},
        "has_crop": BOOL,
    }
    return {
        "Model": model,
        "Match": obj(
            ("subject", "name", "similarity", "match", "face"),
            subject=STR,
            name=STR,
            similarity=NUM,
            match=BOOL,
            face=INT,
        ),
        "Subject": obj(
            ("id", "name", "metadata", "faces"),
            id=STR,
            name=STR,
            metadata=ANY_OBJECT,
            faces=INT,
            created=NUM,
        ),
        "NewSubject": obj(("name",), name=STR, id=STR, metadata=ANY_OBJECT),
        "SubjectUpdate": obj(name=STR, metadata=ANY_OBJECT),
        "SubjectList": obj(("subjects", "total"), subjects=array(ref("Subject")), total=INT, offset=INT),
        "SubjectDeleted": obj(("deleted", "faces"), deleted=STR, faces=INT),
        "FaceRecord": obj(("id", "subject", "model", "image_sha256"), **record),
        "FaceList": obj(("subject", "faces"), subject=STR, faces=array(ref("FaceRecord"))),
        "FaceDeleted": obj(("deleted",), deleted=INT),
        "Enrolment": obj(
            ("subject", "faces", "skipped"),
            subject=STR,
            faces=array(
                obj(
                    ("id", "image", "created"),
                    **record
                    | {
                        "image": {**INT, "description": "which image of the request"},
                        "created": {**BOOL, "description": "false: this image was already enrolled"},
                    },
                )
            ),
            skipped=array(obj(("image", "reason"), image=INT, reason=STR)),
        ),
        "Identification": obj(
            ("results",), model=ref("Model"), threshold=NUM, results=array(ref("ImageResult"))
        ),
        "EmbeddingsQuery": obj(
            ("embeddings",), embeddings=array(VECTOR), k=INT, threshold=NUM, model=ref("Model")
        ),
        "EmbeddingMatches": obj(
            ("results",),
            model=ref("Model"),
            threshold=NUM,
            results=array(obj(("embedding", "matches"), embedding=INT, matches=array(ref("Match")))),
        ),
    }


def _face_api() -> dict[str, Schema]:
    image_result = obj(
        ("image", "width", "height", "faces"), image=INT, width=INT, height=INT, faces=array(ref("Face"))
    )
    aligned = obj(("image", "embedding"), image=INT, embedding=VECTOR)
    return {
        "Face": _face(),
        "ImageResult": image_result,
        "Detections": obj(("results",), results=array(ref("ImageResult"))),
        "Embeddings": obj(
            ("results",),
            model=ref("Model"),
            results={"type": "array", "items": {"oneOf": [ref("ImageResult"), aligned]}},
        ),
        "Verification": obj(
            ("similarity", "threshold", "match"),
            similarity=NUM,
            threshold=NUM,
            match=BOOL,
            model=ref("Model"),
            faces={**array(ref("Face")), "description": "the face compared in each image (images only)"},
        ),
        "ImagesJson": obj(
            images=array({"type": "string", "format": "byte"}),
            image={"type": "string", "format": "byte"},
            embeddings=array(VECTOR),
        ),
        "Error": obj(("error",), error=obj(("code", "message"), code=STR, message=STR)),
    }


def _kserve() -> dict[str, Schema]:
    tensor_meta = obj(("name", "datatype", "shape"), name=STR, datatype=STR, shape=array(INT))
    tensor = obj(
        ("name", "shape", "datatype"),
        name=STR,
        shape=array(INT),
        datatype=STR,
        parameters=ANY_OBJECT,
        data={"type": "array", "items": {}},
    )
    return {
        "KServeError": obj(("error",), error=STR),
        "ServerMetadata": obj(
            ("name", "version", "extensions"), name=STR, version=STR, extensions=array(STR)
        ),
        "ModelMetadata": obj(
            ("name", "platform", "inputs", "outputs"),
            name=STR,
            versions=array(STR),
            platform={**STR, "description": "the runtime that runs it, e.g. openvino_onnx"},
            inputs=array(tensor_meta),
            outputs=array(tensor_meta),
            parameters={
                "type": "object",
                "additionalProperties": STR,
                "description": "facts of the loaded version, e.g. precision (auto resolved) and why",
            },
        ),
        "InferRequest": obj(
            ("inputs",),
            id=STR,
            parameters=ANY_OBJECT,
            inputs=array(tensor),
            outputs=array(obj(("name",), name=STR, parameters=ANY_OBJECT)),
        ),
        "InferResponse": obj(
            ("model_name", "outputs"), model_name=STR, model_version=STR, id=STR, outputs=array(tensor)
        ),
        "RepositoryIndex": array(
            obj(("name", "state"), name=STR, version=STR, state=STR, reason=STR, kind=STR)
        ),
        "ControlRequest": obj(
            version={**STR, "description": "a version number (also as a number)"},
            parameters=obj(version=STR),
        ),
        "Weights": obj(("weights",), weights={"type": "object", "additionalProperties": NUM}),
        "ControlResult": obj(
            model=STR,
            versions={
                "type": "object",
                "additionalProperties": STR,
                "description": "load: version -> outcome",
            },
            unloaded={**array(STR), "description": "unload: the versions unloaded"},
            weights={
                "type": "object",
                "additionalProperties": {"type": "object", "additionalProperties": NUM},
                "description": "weights: served name -> version -> weight, the split now",
            },
        ),
    }


def _seed() -> dict[str, Schema]:
    return {
        "SeedNotFound": obj(
            ("error", "err_no"),
            error=obj(("code", "message"), code=STR, message=STR),
            err_no={**INT, "description": "3002, for seed clients"},
            err_msg=STR,
            key=array(STR),
            value=array(STR),
        ),
        "SeedRequest": obj(("key", "value"), key=array(STR), value=array(STR), logid=INT),
        "SeedResponse": obj(
            ("err_no", "err_msg", "key", "value"),
            err_no={**INT, "description": "0 ok, 3002 unknown service, 5000 bad input, 6000 timeout"},
            err_msg=STR,
            key=array(STR),
            value={"type": "array", "items": {}},
            tensors=array({}),
            logid={**INT, "nullable": True},
            variant=STR,
        ),
    }


def schemas() -> dict[str, Schema]:
    return {**_face_api(), **_gallery(), **_kserve(), **_seed()}
