"""A MobileFaceNet-class network in Paddle, saved the way the seed's recipe saves it.

Run in its own process from the repository root (``FLAGS_enable_pir_api=0`` must be set before Paddle
is imported, so that programs are written in the pre-3.0 protobuf format the seed's layout holds):

    python -m tests.models.convert.paddle_mobilefacenet OUT FACES.npy

writes ``OUT/inference/mobilefacenet.{pdmodel,pdiparams}`` (``paddle.jit.save``), the Paddle Serving
layout ``python -m paddle_serving_client.convert`` produces (``OUT/serving/serving_server/{__model__,
__params__,serving_server_conf.prototxt,serving_server_conf.stream.prototxt}`` and
``OUT/serving/serving_client/serving_client_conf.prototxt``), and Paddle Inference's embeddings of
FACES (N x 3 x 112 x 112, float32) for both layouts in ``OUT/paddle_{inference,serving}.npy``.
Weights are random (seeded); BatchNorm statistics are set from one pass over the faces so that every
layer carries activations of unit scale, as in a trained network.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("FLAGS_enable_pir_api", "0")

import numpy as np
import paddle
from paddle import inference, nn

from tests.models.convert.paddle_serving_conf import serving_conf, serving_conf_stream

FEED_ALIAS, FETCH_ALIAS = "image", "embedding"
DIM = 128


def conv_bn(
    cin: int, cout: int, k: int, stride: int, groups: int = 1, act: bool = True, pad: int = -1
) -> nn.Layer:
    pad = k // 2 if pad < 0 else pad
    layers = [
        nn.Conv2D(cin, cout, k, stride, pad, groups=groups, bias_attr=False),
        nn.BatchNorm2D(cout, momentum=0.0),
    ]
    return nn.Sequential(*layers, nn.PReLU(cout)) if act else nn.Sequential(*layers)


class Bottleneck(nn.Layer):
    """MobileNetV2 inverted residual: 1x1 expand, 3x3 depthwise, 1x1 linear project."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            conv_bn(cin, hidden, 1, 1),
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            conv_bn(hidden, cout, 1, 1, act=False),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileFaceNet(nn.Layer):
    """Chen et al. 2018: stem, bottlenecks to 7x7, 1x1 to 512, global depthwise 7x7, linear 1x1 to DIM."""

    def __init__(self) -> None:
        super().__init__()
        layers = [conv_bn(3, 64, 3, 2), conv_bn(64, 64, 3, 1, groups=64)]
        cin = 64
        for cout, repeat, stride, expand in [(64, 2, 2, 2), (128, 2, 2, 4), (128, 2, 1, 2), (128, 1, 2, 4)]:
            for i in range(repeat):
                layers.append(Bottleneck(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers += [conv_bn(cin, 512, 1, 1), conv_bn(512, 512, 7, 1, groups=512, act=False, pad=0)]
        layers += [nn.Conv2D(512, DIM, 1, bias_attr=False), nn.BatchNorm2D(DIM, momentum=0.0)]
        self.features = nn.Sequential(*layers)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.flatten(self.features(x), 1)


def build(faces: np.ndarray) -> MobileFaceNet:
    paddle.seed(19)
    net = MobileFaceNet()
    net.train()
    with paddle.no_grad():
        net(paddle.to_tensor(faces))  # momentum 0: running statistics := this batch's statistics
    net.eval()
    return net


def serving_layout(inference_dir: Path, out: Path, feed_name: str, fetch_name: str) -> None:
    """What ``paddle_serving_client.convert --dirname inference_dir`` writes (not installable here)."""
    server, client = out / "serving_server", out / "serving_client"
    server.mkdir(parents=True)
    client.mkdir(parents=True)
    shutil.copyfile(inference_dir / "mobilefacenet.pdmodel", server / "__model__")
    shutil.copyfile(inference_dir / "mobilefacenet.pdiparams", server / "__params__")
    names = ((feed_name, FEED_ALIAS), (fetch_name, FETCH_ALIAS), DIM)
    for d, stem in ((server, "serving_server_conf"), (client, "serving_client_conf")):
        (d / f"{stem}.prototxt").write_text(serving_conf(*names))
        (d / f"{stem}.stream.prototxt").write_bytes(serving_conf_stream(*names))


def paddle_inference(model: Path, params: Path, faces: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
    """Paddle Inference (what Paddle Serving runs) on the saved program, default optimisations on."""
    cfg = inference.Config(str(model), str(params))
    cfg.disable_gpu()
    cfg.disable_glog_info()
    pred = inference.create_predictor(cfg)
    ins, outs = pred.get_input_names(), pred.get_output_names()
    handle = pred.get_input_handle(ins[0])
    handle.reshape(list(faces.shape))
    handle.copy_from_cpu(faces)
    pred.run()
    return pred.get_output_handle(outs[0]).copy_to_cpu(), ins, outs


def main(out: Path, faces_path: Path) -> None:
    faces = np.load(faces_path).astype(np.float32)
    net = build(faces)
    spec = [paddle.static.InputSpec([None, 3, 112, 112], "float32", "x")]
    paddle.jit.save(net, str(out / "inference" / "mobilefacenet"), input_spec=spec)
    inf = out / "inference"
    emb, ins, outs = paddle_inference(inf / "mobilefacenet.pdmodel", inf / "mobilefacenet.pdiparams", faces)
    np.save(out / "paddle_inference.npy", emb)
    serving_layout(inf, out / "serving", ins[0], outs[0])
    server = out / "serving" / "serving_server"
    np.save(
        out / "paddle_serving.npy", paddle_inference(server / "__model__", server / "__params__", faces)[0]
    )
    np.save(out / "paddle_dygraph.npy", net(paddle.to_tensor(faces)).numpy())


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
