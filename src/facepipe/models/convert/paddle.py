"""Paddle models to ONNX through ``paddle2onnx``, checked against Paddle's own inference.

Two source layouts are read, both with the pre-3.0 protobuf program (``FLAGS_enable_pir_api=0``):

* an inference model: ``<prefix>.pdmodel`` + ``<prefix>.pdiparams`` (``paddle.jit.save``,
  ``paddle.static.save_inference_model``);
* the Paddle Serving layout that ``python -m paddle_serving_client.convert`` writes:
  ``serving_server/{__model__, __params__, serving_server_conf.prototxt}`` (the directory itself or
  its parent may be given). The feed and fetch names the seed's clients use are the ``alias_name``
  of ``serving_server_conf.prototxt``; the bundle's inputs and outputs take those names.

``paddlepaddle`` (the ``paddle`` extra) and ``paddle2onnx`` (installed beside it, see INSTALL_HINT) are
optional so that serving never depends on Paddle.
"""

from __future__ import annotations

import importlib
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx

from facepipe.errors import ConversionError
from facepipe.models.convert.verify import Parity, compare, run_onnx

log = logging.getLogger(__name__)
SERVING_DIR = "serving_server"
SERVING_MODEL, SERVING_PARAMS = "__model__", "__params__"
SERVING_CONF = "serving_server_conf.prototxt"
INSTALL_HINT = "pip install 'facepipe[server,paddle]' && pip install --no-deps paddle2onnx==2.1.0"


@dataclass(slots=True)
class ServingVar:
    """One ``feed_var`` / ``fetch_var`` of a Paddle Serving conf: program name, client alias, shape."""

    name: str
    alias: str
    shape: list[int]


@dataclass(slots=True)
class PaddleFiles:
    model: Path
    params: Path
    conf: Path | None = None  # serving_server_conf.prototxt, Paddle Serving layout only


@dataclass(slots=True)
class PaddleModel:
    onnx: onnx.ModelProto
    files: PaddleFiles
    feeds: list[ServingVar] = field(default_factory=list)
    fetches: list[ServingVar] = field(default_factory=list)


def find_paddle_files(model_dir: Path) -> PaddleFiles:
    """The program, parameters and (Paddle Serving layout) conf in ``model_dir``."""
    if (model_dir / SERVING_DIR).is_dir():
        model_dir = model_dir / SERVING_DIR
    if (model_dir / SERVING_MODEL).is_file():
        params = model_dir / SERVING_PARAMS
        if not params.is_file():
            raise ConversionError(f"{model_dir}: {SERVING_MODEL} without {SERVING_PARAMS}")
        conf = model_dir / SERVING_CONF
        return PaddleFiles(model_dir / SERVING_MODEL, params, conf if conf.is_file() else None)
    models = sorted(model_dir.glob("*.pdmodel"))
    params_files = sorted(model_dir.glob("*.pdiparams"))
    if len(models) != 1 or len(params_files) != 1:
        raise ConversionError(
            f"{model_dir}: expected one *.pdmodel and one *.pdiparams (or a Paddle Serving "
            f"{SERVING_DIR}/ with {SERVING_MODEL} and {SERVING_PARAMS}), "
            f"found {len(models)} and {len(params_files)}"
        )
    return PaddleFiles(models[0], params_files[0])


_BLOCK = re.compile(r"(feed_var|fetch_var)\s*\{([^}]*)\}", re.S)
_FIELD = re.compile(r"(\w+)\s*:\s*(\"[^\"]*\"|\S+)")


def read_serving_conf(path: Path) -> tuple[list[ServingVar], list[ServingVar]]:
    """``feed_var`` and ``fetch_var`` entries of a (text) ``serving_server_conf.prototxt``."""
    feeds: list[ServingVar] = []
    fetches: list[ServingVar] = []
    for kind, body in _BLOCK.findall(path.read_text()):
        values: dict[str, list[str]] = {}
        for key, value in _FIELD.findall(body):
            values.setdefault(key, []).append(value.strip('"'))
        if "name" not in values:
            raise ConversionError(f"{path}: a {kind} has no name")
        name = values["name"][0]
        var = ServingVar(name, values.get("alias_name", [name])[0], [int(s) for s in values.get("shape", [])])
        (feeds if kind == "feed_var" else fetches).append(var)
    if not feeds or not fetches:
        raise ConversionError(f"{path}: expected feed_var and fetch_var entries")
    return feeds, fetches


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConversionError(f"converting Paddle models needs {name}: {INSTALL_HINT}") from exc


def _export(files: PaddleFiles, opset: int) -> bytes:
    """paddle2onnx reads ``<prefix>.pdmodel`` + ``<prefix>.pdiparams``: the serving names are linked."""
    p2o = _import("paddle2onnx")
    with tempfile.TemporaryDirectory(prefix="facepipe-paddle-") as tmp:
        model, params = Path(tmp) / "model.pdmodel", Path(tmp) / "model.pdiparams"
        model.symlink_to(files.model.resolve())
        params.symlink_to(files.params.resolve())
        try:
            raw = p2o.export(str(model), str(params), None, opset_version=opset)
        except Exception as exc:
            raise ConversionError(f"{files.model}: paddle2onnx failed: {exc}") from exc
    if not isinstance(raw, bytes) or not raw:
        raise ConversionError(f"{files.model}: paddle2onnx produced no model (see its log above)")
    return raw


def _predictor(files: PaddleFiles) -> object:
    inference = _import("paddle.inference")
    cfg = inference.Config(str(files.model), str(files.params))
    cfg.disable_gpu()
    cfg.switch_ir_optim(False)  # the reference is the program as written, unfused
    cfg.disable_glog_info()
    return inference.create_predictor(cfg)


def paddle_io_names(files: PaddleFiles) -> tuple[list[str], list[str]]:
    """The program's feed and fetch variable names, as Paddle's predictor reports them."""
    pred = _predictor(files)
    return list(pred.get_input_names()), list(pred.get_output_names())  # type: ignore[attr-defined]


def run_paddle(files: PaddleFiles, samples: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Paddle's own inference (``paddle.inference``) on each sample: the parity reference."""
    pred = _predictor(files)
    feed = pred.get_input_handle(pred.get_input_names()[0])  # type: ignore[attr-defined]
    out: list[list[np.ndarray]] = []
    for x in samples:
        feed.reshape(list(x.shape))
        feed.copy_from_cpu(np.ascontiguousarray(x))
        pred.run()  # type: ignore[attr-defined]
        names = pred.get_output_names()  # type: ignore[attr-defined]
        out.append([pred.get_output_handle(n).copy_to_cpu() for n in names])  # type: ignore[attr-defined]
    return out


def rename_io(model: onnx.ModelProto, names: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every use of them) by ``names``: old -> new."""
    graph = model.graph
    for v in [*graph.input, *graph.output]:
        v.name = names.get(v.name, v.name)
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]


def _wire_names(model: onnx.ModelProto, pm: PaddleModel) -> None:
    """Inputs and outputs named as the seed's clients know them (aliases), else as Paddle names them."""
    ins = [i.name for i in model.graph.input]
    outs = [o.name for o in model.graph.output]
    if pm.feeds:
        want_in, want_out = [f.alias for f in pm.feeds], [f.alias for f in pm.fetches]
    else:
        want_in, want_out = paddle_io_names(pm.files)
    if len(want_in) != len(ins) or len(want_out) != len(outs):
        raise ConversionError(
            f"{pm.files.model}: the model has {len(ins)} inputs / {len(outs)} outputs, "
            f"the serving conf names {len(want_in)} / {len(want_out)}"
        )
    by_name = {f.name: f.alias for f in pm.feeds}
    mapping = {i: by_name.get(i, w) for i, w in zip(ins, want_in, strict=True)}
    rename_io(model, mapping | dict(zip(outs, want_out, strict=True)))


def _check_shapes(model: onnx.ModelProto, feeds: list[ServingVar]) -> None:
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:]
    if feeds and feeds[0].shape and list(feeds[0].shape) != dims:
        raise ConversionError(
            f"feed_var {feeds[0].alias}: shape {feeds[0].shape} in the serving conf, {dims} in the program"
        )


def convert_paddle(model_dir: Path, opset: int = 18) -> PaddleModel:
    files = find_paddle_files(model_dir)
    feeds, fetches = read_serving_conf(files.conf) if files.conf else ([], [])
    model = onnx.load_model_from_string(_export(files, opset))
    pm = PaddleModel(model, files, feeds, fetches)
    _wire_names(model, pm)
    _check_shapes(model, feeds)
    log.info(
        "converted %s: inputs %s, outputs %s",
        files.model,
        *([v.name for v in vals] for vals in (model.graph.input, model.graph.output)),
    )
    return pm


def paddle_parity(pm: PaddleModel, samples: list[np.ndarray]) -> Parity:
    """The converted graph (onnxruntime) against Paddle's own inference, sample by sample."""
    names = [o.name for o in pm.onnx.graph.output]
    ref = f"paddle.inference {getattr(_import('paddle'), '__version__', '')}".strip()
    return compare(run_onnx(pm.onnx, samples), run_paddle(pm.files, samples), names, ref)
