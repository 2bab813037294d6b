"""The float reference: an ONNX generator run as it is, with onnxruntime, on random latents."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from undense.compiler.condition import condition_classes
from undense.compiler.frontend import ACTIVATIONS
from undense.errors import UndenseError
from undense.runtime.images import ACTIVATION_RANGES, Picture, ValueRange, layout
from undense.runtime.latents import random_latents

SHAPE_ONLY = ("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze")  # ops that keep the values as they are


def reference_options() -> ort.SessionOptions:
    """onnxruntime as a reference: on x86 processors without VNNI its default uint8 x int8 kernel sums pairs of
    products in saturating 16-bit lanes, so a quantized model's result would depend on the processor; this asks
    for its exact (slower) uint8 x uint8 kernel there, and changes nothing elsewhere."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.x64quantprecision", "1")
    return options


def _session(model_path: Path) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(model_path), reference_options(), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises several private exception types for a bad file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UndenseError(f"{model_path}: onnxruntime cannot load it ({first_line}); "
                           "give a valid ONNX model file") from None


def latent_size(session: ort.InferenceSession, model_path: Path) -> int:
    (latent,) = session.get_inputs()
    if len(latent.shape) != 2 or not isinstance(latent.shape[1], int):
        raise UndenseError(f"{model_path}: input '{latent.name}' has shape {latent.shape}; "
                           "a generator takes latents shaped [batch, size] with a fixed size")
    return latent.shape[1]


def _run(session: ort.InferenceSession, model_path: Path, count: int, seed: int, digit: int | None) -> np.ndarray:
    features = latent_size(session, model_path)
    metadata = session.get_modelmeta().custom_metadata_map  # the model's metadata_props, as the compiler reads them
    latents = random_latents(features, count, seed, condition_classes(metadata, features), digit)
    return session.run(None, {session.get_inputs()[0].name: latents})[0]


def sample_float(model_path: str | Path, count: int, seed: int = 0, digit: int | None = None) -> np.ndarray:
    """`count` images from the float model, one row of pixels per image."""
    model_path = Path(model_path)
    return _run(_session(model_path), model_path, count, seed, digit).reshape(count, -1)


def output_range(model: onnx.ModelProto) -> ValueRange:
    """The range of the model's output where its last op bounds it (Sigmoid, Tanh, or Clip with both bounds
    constant inputs, through ops that only reshape), else unknown."""
    producers = {output: node for node in model.graph.node for output in node.output}
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    constants.update({node.output[0]: numpy_helper.to_array(node.attribute[0].t) for node in model.graph.node
                      if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value"})
    node = producers.get(model.graph.output[0].name)
    while node is not None and node.op_type in SHAPE_ONLY:
        node = producers.get(node.input[0])
    kind = ACTIVATIONS.get(node.op_type) if node is not None else None
    if kind in ACTIVATION_RANGES:
        return ValueRange(*ACTIVATION_RANGES[kind], kind)
    if kind == "clip":  # bounds as inputs, opset 11 on
        low, high = (constants.get(name) for name in [*node.input[1:3], "", ""][:2])
        if low is not None and high is not None:
            return ValueRange(float(low), float(high), "clip")
    return ValueRange(0.0, 0.0, "the batch's own values", known=False)


def sample_picture(model_path: str | Path, count: int, seed: int = 0,
                   digit: int | None = None) -> tuple[np.ndarray, Picture]:
    """`count` outputs of the float model, one row each, and how to draw them (as `undense generate` draws a
    compiled model's: runtime/generate.py); UndenseError for an output that is not a picture."""
    model_path = Path(model_path)
    session = _session(model_path)
    declared = session.get_outputs()[0].shape[1:]
    static = bool(declared) and all(isinstance(size, int) for size in declared)
    if static:  # refused before the run where the model declares its shape
        shape = layout(tuple(declared))
    images = _run(session, model_path, count, seed, digit)
    if not static:
        shape = layout(images.shape[1:])
    drawn = Picture(shape, output_range(onnx.load(str(model_path), load_external_data=False)))
    return images.reshape(count, -1), drawn.for_batch(images)
