"""Hand-built convolutional ONNX graphs for the frontend and golden tests: one op under test, sparse weights."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def sparse(rng: np.random.Generator, shape: tuple[int, ...], density: float = 0.4) -> np.ndarray:
    return (rng.normal(size=shape) * (rng.random(shape) < density)).astype(np.float32)


def model(nodes, initializers: dict[str, np.ndarray], in_shape, out_shape, opset: int = OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "conv_test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", *out_shape])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()])
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(built)
    return built


def conv(in_shape, out_channels, kernel, strides=(1, 1), pads=(0, 0, 0, 0), group=1, seed=0,
         activation="Relu", transposed=False, output_padding=(0, 0)) -> onnx.ModelProto:
    """x [C, H, W] -> Conv or ConvTranspose (+ bias) -> activation -> y; the output shape from ONNX's inference."""
    rng = np.random.default_rng(seed)
    c_in = in_shape[0]
    weight_shape = (c_in, out_channels // group, *kernel) if transposed else (out_channels, c_in // group, *kernel)
    attrs = {"kernel_shape": list(kernel), "strides": list(strides), "pads": list(pads), "group": group}
    if transposed:
        attrs["output_padding"] = list(output_padding)
    nodes = [helper.make_node("ConvTranspose" if transposed else "Conv", ["x", "w", "b"], ["c"], name="conv",
                              **attrs)]
    nodes.append(helper.make_node(activation, ["c"], ["y"], name="act") if activation else
                 helper.make_node("Identity", ["c"], ["y"], name="act"))
    inits = {"w": sparse(rng, weight_shape), "b": rng.normal(size=out_channels).astype(np.float32) * 0.1}
    probe = model(nodes, inits, in_shape, [None] * 3)
    inferred = onnx.shape_inference.infer_shapes(probe).graph.output[0].type.tensor_type.shape.dim
    return model(nodes, inits, in_shape, [d.dim_value for d in inferred[1:]])


def upsample_conv(in_shape, out_channels, factor, kernel=(3, 3), pads=(1, 1, 1, 1), seed=0,
                  coordinate_mode="asymmetric", nearest_mode="floor", through_batchnorm=False) -> onnx.ModelProto:
    """x -> Resize (nearest, scales [1, 1, f, f]) -> Conv -> [BatchNormalization] -> Relu -> y."""
    rng = np.random.default_rng(seed)
    c_in, h, w = in_shape
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["up"], name="up", mode="nearest",
                              coordinate_transformation_mode=coordinate_mode, nearest_mode=nearest_mode),
             helper.make_node("Conv", ["up", "w", "b"], ["c"], name="conv", kernel_shape=list(kernel),
                              pads=list(pads))]
    inits = {"scales": np.array([1, 1, factor, factor], dtype=np.float32), "w": sparse(rng, (out_channels, c_in,
                                                                                             *kernel)),
             "b": rng.normal(size=out_channels).astype(np.float32) * 0.1}
    if through_batchnorm:
        nodes.append(helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"], name="bn"))
        inits.update(gamma=rng.uniform(0.5, 1.5, out_channels).astype(np.float32),
                     beta=rng.uniform(-0.2, 0.2, out_channels).astype(np.float32),
                     mean=rng.uniform(-0.5, 0.5, out_channels).astype(np.float32),
                     var=rng.uniform(0.5, 2.0, out_channels).astype(np.float32))
    nodes.append(helper.make_node("Relu", [nodes[-1].output[0]], ["y"], name="relu"))
    out_h = (h * factor + pads[0] + pads[2] - kernel[0]) + 1
    out_w = (w * factor + pads[1] + pads[3] - kernel[1]) + 1
    return model(nodes, inits, in_shape, [out_channels, out_h, out_w])


def conv_chain(in_shape=(3, 4, 5), channels=4, seed=0) -> onnx.ModelProto:
    """x -> ConvTranspose 3x3 / 2 (output_padding 1) -> Relu -> Conv 3x3 -> Relu -> depthwise Conv 3x3 (pads
    2, 0, 0, 1) -> Relu -> Conv 1x1 to one channel -> Sigmoid -> y: a map that convolutions read row by row,
    through rolling windows of different spans, kernels that reach above and below, and a map that travels
    densely (the Sigmoid's) to the host."""
    rng = np.random.default_rng(seed)
    c_in, h, w = in_shape
    height, width = 2 * h, 2 * w
    inits = {"w0": sparse(rng, (c_in, channels, 3, 3)), "w1": sparse(rng, (channels, channels, 3, 3)),
             "w2": sparse(rng, (channels, 1, 3, 3), density=0.7), "w3": sparse(rng, (1, channels, 1, 1), density=0.8)}
    inits.update({f"b{k}": rng.normal(size=n).astype(np.float32) * 0.1 for k, n in enumerate((channels,) * 3 + (1,))})
    nodes = [helper.make_node("ConvTranspose", ["x", "w0", "b0"], ["c0"], name="up", kernel_shape=[3, 3],
                              strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
             helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="depthwise", kernel_shape=[3, 3],
                              pads=[2, 0, 0, 2], group=channels),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="mix", kernel_shape=[1, 1]),
             helper.make_node("Sigmoid", ["c3"], ["y"], name="sigmoid")]
    return model(nodes, inits, in_shape, [1, height, width])
