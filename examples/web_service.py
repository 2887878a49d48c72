"""The seed's ArcFace deployment (its web_service.py) on facepipe's public pipeline API.

facepipe serve --app examples.web_service:app --config examples/config.yml
python examples/web_service.py          # the same, the seed's way
"""

import base64
import sys
from pathlib import Path

import cv2
import numpy as np

from facepipe.engine import App, Dag, InvalidInput, SeedOp, Service, Tensor


class ArcFaceOp(SeedOp):
    def preprocess(self, item: dict) -> np.ndarray:  # an aligned face crop: raw or base64 image bytes
        img = cv2.imdecode(np.frombuffer(item["image"], np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            img = cv2.imdecode(np.frombuffer(base64.b64decode(item["image"]), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise InvalidInput("image: not a decodable image")
        img = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (112, 112))
        return (img.astype(np.float32) - 127.5) / 128.0

    def postprocess(self, item: dict, out: dict) -> dict:  # process (the default): one call per batch
        return {"out": out["embeddings"] / np.linalg.norm(out["embeddings"])}


dag = Dag("ArcFace").add("ArcFace", ArcFaceOp, model="mobilefacenet")  # runtime: config.yml op.ArcFace
app = App([Service("ArcFace", dag, outputs=[Tensor("out", [192], "FP32")])])

if __name__ == "__main__":
    from facepipe.cli import main

    config = Path(__file__).with_name("config.yml")
    sys.argv[1:] = ["serve", "--app", "web_service:app", "--config", str(config)]
    main()
