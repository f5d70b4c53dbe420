"""Exporting a sentence-transformers model to ONNX / OpenVINO, and running the export.

The exported graph is the whole sentence-transformers pipeline (transformer, pooling and,
where the model has one, normalisation), traced from the loaded PyTorch module to ONNX (and
read from there into OpenVINO's own format), so the tokenizer and the padding stay
sentence-transformers' own and only the forward pass moves to the faster runtime. Neither
optimum nor a hub download is involved: the trace starts from the weights already on disk.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

FAST_BACKENDS = ("openvino", "onnx")
ONNX_FILE = "model.onnx"
OPENVINO_FILE = "model.xml"
# Two short texts of different lengths, so padding and the attention mask are in the trace.
_KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_TRACE_TEXTS = ["a short text", "a second, somewhat longer text for tracing the model"]


class Runner(Protocol):
    """One forward pass of an exported encoder: token ids in, sentence embeddings out."""

    input_names: tuple[str, ...]

    @property
    def description(self) -> str:
        """Runtime, device and numeric format, e.g. `openvino/CPU/bf16`."""
        ...

    def __call__(self, features: dict[str, np.ndarray]) -> np.ndarray: ...


def preprocess(model: SentenceTransformer, texts: list[str]) -> dict[str, Any]:
    """sentence-transformers' own tokenisation (`preprocess` since 5.x, `tokenize` before)."""
    fn = getattr(model, "preprocess", None) or model.tokenize
    return dict(fn(texts))


def trace_inputs(model: SentenceTransformer) -> dict[str, Any]:
    """The integer tensors the model's forward takes (input_ids, attention_mask, ...)."""
    import torch

    features = preprocess(model, _TRACE_TEXTS)
    return {k: v for k, v in features.items()
            if isinstance(v, torch.Tensor) and v.dim() == 2 and not v.is_floating_point()}


def _pipeline_module(model: SentenceTransformer, names: tuple[str, ...]) -> Any:
    import torch

    unknown = set(names) - set(_KNOWN_INPUTS)
    if unknown:
        raise ValueError(f"the model takes inputs {sorted(unknown)} this exporter does not know")

    class SentenceEmbedding(torch.nn.Module):
        """Named tensors -> the feature dict the pipeline expects -> sentence_embedding.

        Named parameters (not *args) so both tracers name the graph's inputs after them."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                features["token_type_ids"] = token_type_ids
            return self.model(features)["sentence_embedding"]

    return SentenceEmbedding().eval()


def export(backend: str, model: SentenceTransformer, folder: Path) -> None:
    """Writes `backend`'s export of `model` into `folder` (which exists and is empty)."""
    import torch

    found = trace_inputs(model)
    names = tuple(n for n in _KNOWN_INPUTS if n in found)  # the forward's parameter order
    module = _pipeline_module(model, tuple(found))
    example = tuple(found[n] for n in names)
    if backend not in FAST_BACKENDS:
        raise ValueError(f"no exporter for backend {backend!r}")
    onnx_path = folder / ONNX_FILE
    # The tracers warn about every Python branch in transformers' code; none of them depends
    # on the batch or sequence size here (the probe check at start-up is the proof).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, example, str(onnx_path), input_names=list(names),
            output_names=["sentence_embedding"], opset_version=17, dynamo=False,
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                          "sentence_embedding": {0: "batch"}},
        )
    if backend == "openvino":
        # OpenVINO reads the ONNX graph with its own frontend rather than tracing the torch
        # module through openvino.convert_model: that converter reports usage to Intel unless
        # a consent file says no, and the platform sends nothing anywhere.
        import openvino as ov

        graph = ov.Core().read_model(str(onnx_path))
        # Weights stay float32 on disk: fp16 compression would cost cosine for nothing; the
        # runtime picks its own numeric format per CPU when it compiles.
        ov.save_model(graph, str(folder / OPENVINO_FILE), compress_to_fp16=False)
        onnx_path.unlink()


class OnnxRunner:
    def __init__(self, folder: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in self._session.get_inputs())

    @property
    def description(self) -> str:
        return "onnx/CPU/f32"

    def __call__(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._session.run(None, features)[0])


class OpenVinoRunner:
    def __init__(self, folder: Path, threads: int | None, precision: str) -> None:
        import openvino as ov

        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        self._compiled = core.compile_model(core.read_model(str(folder / OPENVINO_FILE)), "CPU",
                                            config)
        self._request = self._compiled.create_infer_request()
        self.input_names = tuple(p.get_any_name() for p in self._compiled.inputs)
        # bf16 where the CPU has native support (AVX-512 BF16 / AMX), f32 elsewhere.
        self._precision = str(self._compiled.get_property("INFERENCE_PRECISION_HINT"))

    @property
    def precision(self) -> str:
        return self._precision.replace("<Type: '", "").replace("'>", "")

    @property
    def description(self) -> str:
        return f"openvino/CPU/{_short_type(self.precision)}"

    def __call__(self, features: dict[str, np.ndarray]) -> np.ndarray:
        result = self._request.infer(features)
        return np.asarray(result[self._compiled.outputs[0]]).copy()


def _short_type(name: str) -> str:
    return {"bfloat16": "bf16", "float32": "f32", "float16": "f16"}.get(name, name)


def load_runner(backend: str, folder: Path, threads: int | None = None,
                precision: str = "auto") -> Runner:
    if backend == "onnx":
        return OnnxRunner(folder, threads)
    if backend == "openvino":
        return OpenVinoRunner(folder, threads, precision)
    raise ValueError(f"no runtime for backend {backend!r}")
