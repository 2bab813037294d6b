"""The ways a GPU user runs a model, for `undense baseline --measure` (runtime/baseline.py): each runtime gives, for
every variant it runs (`eager_fp16`, `onnxruntime_fp32`...: the way and the precision), a function that runs one
batch of random latents on CUDA's device 0 and waits for its images."""
from collections.abc import Callable

import numpy as np

from undense.errors import UndenseError

QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "MatMulInteger", "QLinearMatMul", "ConvInteger", "QLinearConv"}


def model_precision(model) -> str:
    """fp32 for a float model (every floating-point initializer fp32, no quantization op), else 'as given'."""
    from onnx import TensorProto

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
    quantized = any(node.op_type in QUANTIZED_OPS for node in model.graph.node)
    if quantized or any(init.data_type in floats - {TensorProto.FLOAT} for init in model.graph.initializer):
        return "as given"
    return "fp32"


def precisions(model) -> list[str]:
    """What the model runs at: as given, and in fp16 too where it is a float model."""
    precision = model_precision(model)
    return [precision, "fp16"] if precision == "fp32" else [precision]


def latent_features(shape: list) -> int:
    """Values per image of the model's input, whose first axis is the batch."""
    return int(np.prod([d for d in shape[1:]]))


def fp16_model(model) -> bytes:
    """The float model converted to fp16 by onnxruntime's converter, its inputs and outputs kept fp32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True).SerializeToString()


def cuda_runner(model: bytes) -> tuple[Callable[[int], None], str]:
    """A function that runs one batch of random latents on the GPU with onnxruntime's CUDA provider, and the
    provider with the settings that bear on the figures."""
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise UndenseError("onnxruntime has no CUDA provider here: --runtime onnxruntime needs an NVIDIA GPU and "
                           "`pip install onnxruntime-gpu` in place of onnxruntime")
    session = onnxruntime.InferenceSession(model, providers=["CUDAExecutionProvider"])
    if session.get_providers()[0] != "CUDAExecutionProvider":
        raise UndenseError("onnxruntime could not start its CUDA provider and fell back to the CPU: check the CUDA "
                           "and cuDNN libraries that onnxruntime-gpu needs (its warnings above name them)")
    feed = session.get_inputs()[0]
    features = latent_features(feed.shape)
    inputs = {}

    def run(batch: int):
        if batch not in inputs:
            inputs[batch] = np.random.default_rng(0).standard_normal((batch, features)).astype(np.float32)
        session.run(None, {feed.name: inputs[batch]})

    tf32 = session.get_provider_options().get("CUDAExecutionProvider", {}).get("use_tf32")
    # use_tf32=1 lets cuBLAS run fp32 GEMMs on tensor cores in TF32 (10-bit mantissa): recorded, not changed
    return run, "CUDA provider" + ("" if tf32 is None else f", use_tf32={tf32}")


def onnxruntime_variants(model, runner=cuda_runner) -> tuple[dict[str, Callable[[int], None]], str]:
    """The model with onnxruntime's CUDA provider, at each of its precisions."""
    import onnxruntime

    runners = {f"onnxruntime_{precision}": runner(model.SerializeToString() if precision != "fp16"
                                                  else fp16_model(model))
               for precision in precisions(model)}
    providers = sorted({provider for _, provider in runners.values()})
    return ({name: run for name, (run, _) in runners.items()},
            f"onnxruntime {onnxruntime.__version__} ({'; '.join(providers)})")


def torch_variants(model) -> tuple[dict[str, Callable[[int], None]], str]:
    """The model run as a PyTorch user would (runtime/torch_runtime.py)."""
    try:
        import onnx2torch  # noqa: F401
        import torch
    except ImportError as error:
        raise UndenseError(f"{error.name} is not installed: --runtime torch needs PyTorch with CUDA and onnx2torch "
                           "(pip install 'undense[gpu]')") from None
    if not torch.cuda.is_available():
        raise UndenseError("PyTorch sees no CUDA GPU: --measure needs an NVIDIA GPU and a CUDA build of PyTorch")
    from undense.runtime import torch_runtime

    return torch_runtime.variants(model, precisions(model), latent_features(
        [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]))


RUNTIMES = {"torch": torch_variants, "onnxruntime": onnxruntime_variants}
