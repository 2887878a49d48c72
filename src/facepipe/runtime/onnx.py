"""onnxruntime on CPU: one session per worker, batches chunked to the bundle's max batch."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from facepipe.models.bundle import Bundle
from facepipe.runtime import in_chunks


class OnnxSession:
    def __init__(self, bundle: Bundle, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3  # graph-cleanup warnings of published models are not ours to fix
        # Spinning intra-op threads burn the cores that the HTTP front end and the other workers need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.bundle = bundle
        self.session = ort.InferenceSession(str(bundle.model_path), opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.max_batch = max(1, bundle.manifest.max_batch)

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o) for o in self.session.run(self.output_names, inputs)]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run on a batch (axis 0), in chunks of at most ``max_batch``; outputs concatenated."""
        return in_chunks(self._run, inputs, self.max_batch)
