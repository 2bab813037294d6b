"""PyTorch's side of the GPU baseline (runtime/gpu_runtimes.py): an ONNX model through onnx2torch, its constant
shape arguments made plain values, and the ways to run it. Imported only where PyTorch and onnx2torch are."""
import importlib.metadata
from collections.abc import Callable

import onnx
import onnx2torch
import torch
from onnx import numpy_helper
from onnx2torch.node_converters.reshape import OnnxReshape
from onnx2torch.node_converters.resize import OnnxResize, _onnx_mode_to_torch_mode

from undense.compiler.frontend import onnx_opset
from undense.errors import UndenseError
from undense.runtime.baseline import BatchTooLarge

WARM_UP_RUNS = 3  # before a batch size is timed: kernels chosen, compiled, captured


def torch_module(model: onnx.ModelProto) -> torch.fx.GraphModule:
    """The ONNX model as a PyTorch module, by onnx2torch, its constant shape arguments plain values (`constant_shapes`).
    onnx2torch's converters stop at opset 17 and refuse Reshape's allowzero=1, so the model is converted to opset 17
    by onnx's own converter first, and allowzero cleared where the target shape is a constant without a zero
    (allowzero changes nothing then)."""
    model = onnx.version_converter.convert_version(model, min(17, onnx_opset(model)))
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    constants |= {node.output[0]: numpy_helper.to_array(node.attribute[0].t) for node in model.graph.node
                  if node.op_type == "Constant" and node.attribute[0].name == "value"}
    for node in (node for node in model.graph.node if node.op_type == "Reshape"):
        shape = constants.get(node.input[1])
        for attribute in node.attribute:
            if attribute.name == "allowzero" and shape is not None and 0 not in shape:
                attribute.i = 0
    try:
        return constant_shapes(onnx2torch.convert(model).eval())
    except NotImplementedError as error:
        raise UndenseError(f"onnx2torch cannot convert this model ({error}): measure it with --runtime onnxruntime "
                           "instead (pip install onnxruntime-gpu)") from None


class ConstantReshape(torch.nn.Module):
    """ONNX Reshape to a shape known ahead (0 keeps the input's size on that axis)."""

    def __init__(self, shape: list[int]):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape([x.shape[axis] if size == 0 else size for axis, size in enumerate(self.shape)])


class ConstantResize(torch.nn.Module):
    """ONNX Resize by scales of the spatial axes known ahead, as onnx2torch's OnnxResize computes it."""

    def __init__(self, resize: OnnxResize, scales: list[float]):
        super().__init__()
        self.scales, self.align_corners = scales, resize.align_corners
        self.mode = _onnx_mode_to_torch_mode(resize.onnx_mode, len(scales))

    def forward(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=self.scales, mode=self.mode,
                                               align_corners=self.align_corners)


def constant_shapes(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """onnx2torch's Reshape and Resize read their shape and scales tensors back at every call: on the GPU that
    stalls the stream, cannot be captured in a CUDA graph, and torch.compile cannot trace it. Where those are
    initializers, the node becomes a ConstantReshape or ConstantResize with them as plain values."""
    def constant(arg):
        return module.get_buffer(arg.target).tolist() if isinstance(arg, torch.fx.Node) and arg.op == "get_attr" \
            else None

    for node in module.graph.nodes:
        if node.op != "call_module":
            continue
        layer, (x, *rest) = module.get_submodule(node.target), node.args
        values = [constant(arg) for arg in rest] + [constant(arg) for arg in node.kwargs.values()]
        if isinstance(layer, OnnxReshape) and values[0] is not None:
            replacement = ConstantReshape(values[0])
        elif isinstance(layer, OnnxResize) and not rest and set(node.kwargs) == {"scales"} \
                and values[0] is not None and values[0][:2] == [1, 1]:  # batch and channels kept
            replacement = ConstantResize(layer, values[0][2:])
        else:
            continue
        module.add_submodule(node.target, replacement)
        node.args, node.kwargs = (x,), {}
    module.graph.eliminate_dead_code()
    module.recompile()
    return module


Runner = Callable[[int], None]


def variants(model: onnx.ModelProto, precisions: list[str], features: int) -> tuple[dict[str, Runner], str]:
    """The model as a PyTorch user would run it on the GPU, at each of its precisions: `eager`, `cuda_graph` (the
    batch's kernels captured once and replayed: no launch overhead) and, in fp16, `compiled` (torch.compile's
    TorchInductor kernels, elementwise work fused into its neighbours, replayed as a CUDA graph too)."""
    modules = {precision: torch_module(model).cuda() for precision in precisions}
    if "fp16" in modules:
        modules["fp16"] = modules["fp16"].half()
    runners = {}
    for precision, module in modules.items():
        dtype = next(module.parameters()).dtype
        runners[f"eager_{precision}"] = batch_runner(module, features, dtype)
        runners[f"cuda_graph_{precision}"] = batch_runner(module, features, dtype, graphed=True)
    if "fp16" in modules:
        runners["compiled_fp16"] = batch_runner(torch.compile(modules["fp16"]), features, torch.float16,
                                                 graphed=True)
    settings = f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32}"
    return runners, (f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}, {settings}), "
                      f"onnx2torch {importlib.metadata.version('onnx2torch')}")


def batch_runner(module, features: int, dtype: torch.dtype, graphed: bool = False) -> Runner:
    """A function that runs `module` on one batch of random latents on the GPU and waits for it; the first call at a
    batch size warms up (and, `graphed`, captures the batch in a CUDA graph, which later calls replay); a batch that
    does not fit raises BatchTooLarge."""
    calls = {}

    def run(batch: int):
        if batch not in calls:
            try:
                latents = torch.randn(batch, features, generator=torch.Generator().manual_seed(0)).to("cuda", dtype)
                calls[batch] = capture(module, latents) if graphed else lambda: module(latents)
                with torch.no_grad():
                    for _ in range(WARM_UP_RUNS):
                        calls[batch]()
            except torch.cuda.OutOfMemoryError:
                calls.pop(batch, None)
                torch.cuda.empty_cache()
                raise BatchTooLarge(batch) from None
        with torch.no_grad():
            calls[batch]()
        torch.cuda.synchronize()

    return run


def capture(module, latents) -> Callable[[], None]:
    """One batch of `module` as a CUDA graph, warmed up on a side stream as capture asks; returns its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        for _ in range(WARM_UP_RUNS):
            module(latents)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        module(latents)
    return graph.replay
