"""undense: sparse generative models from ONNX to FPGA accelerators.

    compiled = undense.compile("model.onnx", "build/")   # or a ModelProto
    images = compiled.run(latents, backend="golden")
    compiled = undense.load("build/")
"""
from undense.errors import UndenseError
from undense.runtime.compiled import Compiled, compile, load

__all__ = ["Compiled", "UndenseError", "compile", "load"]
