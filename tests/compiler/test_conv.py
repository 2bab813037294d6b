"""Convolutions in the compiler: each op against onnxruntime on hand-built graphs, the multiplies compile.json
counts against a brute-force count, and a clear refusal of every variant undense does not compile."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conv_models import conv, model, sparse, upsample_conv
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from onnx import helper

import undense
from undense.compiler.frontend import import_onnx
from undense.compiler.geometry import Conv2d
from undense.compiler.ir import QDense
from undense.compiler.reference import run_float
from undense.errors import UndenseError
from undense.hw.top import check_buildable

CASES = {
    "3x3, pads 1": (lambda: conv((3, 8, 8), 4, (3, 3), pads=(1, 1, 1, 1)), (3, 8, 8)),
    "strides and asymmetric pads": (lambda: conv((3, 9, 7), 4, (3, 2), strides=(2, 1), pads=(0, 1, 2, 0)), (3, 9, 7)),
    "depthwise": (lambda: conv((4, 6, 6), 4, (3, 3), pads=(1, 1, 1, 1), group=4), (4, 6, 6)),
    "depthwise, two per channel, LeakyRelu": (lambda: conv((3, 6, 6), 6, (3, 3), group=3, activation="LeakyRelu"),
                                              (3, 6, 6)),
    "ConvTranspose 4x4 stride 2": (lambda: conv((4, 5, 5), 3, (4, 4), strides=(2, 2), pads=(1, 1, 1, 1),
                                                transposed=True), (4, 5, 5)),
    "ConvTranspose output_padding, asymmetric pads, Sigmoid": (
        lambda: conv((4, 5, 4), 3, (3, 3), strides=(2, 3), pads=(1, 0, 0, 2), transposed=True,
                     output_padding=(1, 2), activation="Sigmoid"), (4, 5, 4)),
    "Upsample x2 + Conv": (lambda: upsample_conv((3, 5, 5), 4, 2), (3, 5, 5)),
    "Upsample x3 half_pixel + Conv + BatchNormalization": (
        lambda: upsample_conv((3, 4, 5), 4, 3, coordinate_mode="half_pixel", nearest_mode="round_prefer_floor",
                              through_batchnorm=True), (3, 4, 5)),
}


def onnxruntime_run(built: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(built.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("case", CASES)
def test_float_import_computes_what_onnxruntime_computes(case):
    build, in_shape = CASES[case]
    built = build()
    x = np.random.default_rng(1).normal(size=(32, *in_shape)).astype(np.float32)
    expected = onnxruntime_run(built, x)
    graph = import_onnx(built)
    computed = run_float(graph, x.reshape(len(x), -1))[0][graph.output]
    np.testing.assert_allclose(computed.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_golden_stays_within_a_few_steps_of_requantization(case):
    """Within 4 steps of the code space requantization lands in (before a table: its input's), through the
    activation's slope, plus half an output step where a table rounds again; on average within half a step."""
    build, in_shape = CASES[case]
    built = build()
    x = np.random.default_rng(2).normal(size=(200, *in_shape)).astype(np.float32)
    expected = onnxruntime_run(built, x)
    compiled = undense.compile(built, calibration=x)
    (layer,) = compiled.graph.nodes
    slope = {"sigmoid": 0.25}.get(layer.activation, 1.0)
    rounding = 0.5 * compiled.graph.quant[layer.output].scale if layer.table is not None else 0.0
    step = slope * layer.requant.scale
    error = np.abs(compiled.run(x).reshape(expected.shape) - expected)
    assert error.max() <= 4 * step + rounding and error.mean() <= 0.5 * step + rounding, (error.max(), step)


def test_batchnorm_and_activation_fold_into_the_convolution():
    compiled = undense.compile(upsample_conv((3, 4, 4), 4, 2, through_batchnorm=True),
                               calibration=np.random.default_rng(0).normal(size=(64, 48)))
    (layer,) = compiled.graph.nodes
    assert layer.activation == "relu" and layer.geometry.upsample == (2, 2)


def brute_force_matrix(geometry: Conv2d, kernel: np.ndarray) -> np.ndarray:
    """The layer's dense (out, in) matrix by loops over every output or input position and kernel tap."""
    (c_in, h_in, w_in), (c_out, h_out, w_out) = geometry.in_shape, geometry.out_shape
    (kh, kw), (sy, sx), (top, left, _, _), (uy, ux) = geometry.kernel, geometry.stride, geometry.pads, geometry.upsample
    per_group_in, per_group_out = c_in // geometry.groups, c_out // geometry.groups
    matrix = np.zeros((c_out * h_out * w_out, c_in * h_in * w_in), dtype=kernel.dtype)
    for o in range(c_out):
        for j in range(per_group_in):
            i = (o // per_group_out) * per_group_in + j
            for ky in range(kh):
                for kx in range(kw):
                    if geometry.transposed:
                        pairs = [((y * sy - top + ky, x * sx - left + kx), (y, x))
                                 for y in range(h_in) for x in range(w_in)]
                    else:
                        pairs = [((y, x), ((y * sy - top + ky) // uy, (x * sx - left + kx) // ux))
                                 for y in range(h_out) for x in range(w_out)
                                 if 0 <= y * sy - top + ky < h_in * uy and 0 <= x * sx - left + kx < w_in * ux]
                    for (oy, ox), (iy, ix) in pairs:
                        if 0 <= oy < h_out and 0 <= ox < w_out:
                            matrix[(o * h_out + oy) * w_out + ox, (i * h_in + iy) * w_in + ix] += kernel[o, j, ky, kx]
    return matrix


@st.composite
def conv_layers(draw):
    transposed = draw(st.booleans())
    groups = 1 if transposed else draw(st.sampled_from([1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    h, w = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple(draw(st.integers(0, k - 1)) for k in kernel * 2)
    upsample = (1, 1) if transposed or draw(st.booleans()) else (draw(st.integers(2, 3)),) * 2
    extra = tuple(draw(st.integers(0, s - 1)) for s in stride) if transposed else (0, 0)
    return c_in, (h, w), c_out, kernel, stride, pads, groups, transposed, upsample, extra


def conv_model(c_in, size, c_out, kernel, stride, pads, groups, transposed, upsample, extra, seed) -> onnx.ModelProto:
    if upsample != (1, 1):
        return upsample_conv((c_in, *size), c_out, upsample[0], kernel, pads, seed)
    return conv((c_in, *size), c_out, kernel, stride, pads, groups, seed, activation=None, transposed=transposed,
                output_padding=extra)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer=conv_layers(), seed=st.integers(0, 1000))
@example(layer=(1, (2, 2), 1, (3, 1), (2, 1), (0, 0, 0, 0), 1, False, (1, 1), (0, 0)), seed=0)  # no output row
@example(layer=(1, (2, 2), 1, (1, 1), (1, 1), (0, 0, 0, 0), 1, False, (1, 1), (0, 0)), seed=0)  # channelwise
def test_macs_in_compile_json_are_the_nonzero_weight_and_real_input_pairs(layer, seed):
    try:
        built = conv_model(*layer, seed=seed)
    except onnx.shape_inference.InferenceError:
        return  # a shape ONNX itself refuses (an output smaller than one pixel)
    _, size, _, kernel, _, pads, _, transposed, upsample, _ = layer
    in_size = int(np.prod(built.graph.input[0].type.tensor_type.shape.dim[1].dim_value * np.prod(size)))
    overhangs = not transposed and any(n * u + pads[axis] + pads[axis + 2] < k
                                       for axis, (n, u, k) in enumerate(zip(size, upsample, kernel, strict=True)))
    if overhangs or min(dim.dim_value for dim in built.graph.output[0].type.tensor_type.shape.dim[2:]) < 1:
        # no output pixel (ONNX's shape inference gives one where the kernel overhangs the padded input): compile
        # refuses it (test_a_conv_whose_output_has_no_pixel_is_refused)
        return
    compiled = undense.compile(built, calibration=np.random.default_rng(seed).normal(size=(16, in_size)))
    layers = [n for n in compiled.graph.nodes if isinstance(n, QDense)]
    # the layer's own node, not a BatchNormalization's; a 1 x 1 conv of one channel a group is channelwise itself
    node = next((n for n in layers if n.geometry.op != "channelwise"), layers[0])
    brute = brute_force_matrix(node.geometry, node.kernel)
    np.testing.assert_array_equal(node.dense_codes(), brute)
    (reported,) = [entry for entry in compiled.report["layers"] if entry["name"] == node.name]
    assert reported["macs"] == np.count_nonzero(brute)
    assert reported["nnz"] == np.count_nonzero(node.kernel)


def test_report_counts_a_conv_transpose_without_inserted_zeros():
    compiled = undense.compile(conv((8, 7, 7), 4, (4, 4), strides=(2, 2), pads=(1, 1, 1, 1), transposed=True),
                               calibration=np.random.default_rng(0).normal(size=(32, 8 * 49)))
    (layer,) = [entry for entry in compiled.report["layers"] if entry["op"] == "conv_transpose"]
    assert layer["in_shape"] == [8, 7, 7] and layer["out_shape"] == [4, 14, 14]
    # each output pixel meets at most 2 x 2 of the 4 x 4 taps; zero insertion would multiply by all 16
    assert layer["macs"] <= layer["nnz"] * 49 < layer["dense_macs"] == 4 * 14 * 14 * 8 * 16
    assert compiled.report["total_macs"] == sum(entry["macs"] for entry in compiled.report["layers"])


def unsupported(nodes, inits, in_shape, out_shape, opset=17):
    graph_model = model(nodes, inits, in_shape, out_shape, opset)
    with pytest.raises(UndenseError) as error:
        import_onnx(graph_model)
    return str(error.value)


def test_dilation_is_refused_by_name():
    rng = np.random.default_rng(0)
    message = unsupported([helper.make_node("Conv", ["x", "w"], ["y"], name="dilated", dilations=[2, 2])],
                          {"w": sparse(rng, (2, 2, 3, 3))}, (2, 8, 8), (2, 4, 4))
    assert "'dilated' (Conv)" in message and "dilation" in message


def test_a_3d_convolution_is_refused():
    rng = np.random.default_rng(0)
    message = unsupported([helper.make_node("Conv", ["x", "w"], ["y"], name="c3d")],
                          {"w": sparse(rng, (2, 2, 3, 3, 3))}, (2, 5, 5, 5), (2, 3, 3, 3))
    assert "'c3d' (Conv)" in message and "3-D convolutions are not supported" in message


def test_grouped_conv_transpose_is_refused():
    rng = np.random.default_rng(0)
    message = unsupported([helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="gct", group=2)],
                          {"w": sparse(rng, (4, 1, 2, 2))}, (4, 3, 3), (2, 4, 4))
    assert "'gct' (ConvTranspose)" in message and "grouped ConvTranspose" in message


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_a_resize_that_interpolates_is_refused(mode):
    message = unsupported([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="smooth", mode=mode)],
                          {"scales": np.array([1, 1, 2, 2], np.float32)}, (2, 3, 3), (2, 6, 6))
    assert "'smooth' (Resize)" in message and f"{mode} resizing is not supported" in message


def test_a_resize_by_a_fraction_is_refused():
    message = unsupported([helper.make_node("Resize", ["x", "", "scales"], ["up"], name="odd", mode="nearest"),
                           helper.make_node("Relu", ["up"], ["y"], name="relu")],
                          {"scales": np.array([1, 1, 1.5, 1.5], np.float32)}, (2, 4, 4), (2, 6, 6))
    assert "'odd' (Resize)" in message and "whole factors" in message


def test_a_symbolic_spatial_size_is_refused():
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="free")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 2, "height", 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 2, "height_out", 6])],
        [onnx.numpy_helper.from_array(sparse(rng, (2, 2, 3, 3)), "w")])
    with pytest.raises(UndenseError, match="dynamic dimension 'height'"):
        import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_hardware_refuses_a_strided_conv_and_says_what_it_takes():
    compiled = undense.compile(CASES["strides and asymmetric pads"][0](),
                               calibration=np.random.default_rng(0).normal(size=(8, 189)))
    with pytest.raises(UndenseError, match="layer 'conv' is a Conv of stride 2x1 .* takes Conv of stride 1, nearest "
                                           "Upsample \\+ Conv and ConvTranspose"):
        check_buildable(compiled.graph)


def attribute_variants() -> dict[str, tuple[onnx.ModelProto, tuple[int, ...]]]:
    """Ops whose geometry comes from attributes other than pads: auto_pad, output_shape, Resize `sizes`."""
    rng = np.random.default_rng(3)
    same = model([helper.make_node("Conv", ["x", "w"], ["y"], name="same", auto_pad="SAME_UPPER", strides=[2, 2])],
                 {"w": sparse(rng, (3, 2, 4, 4))}, (2, 7, 7), (3, 4, 4))
    shaped = model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="shaped", strides=[2, 2],
                                     output_shape=[9, 10])],
                   {"w": sparse(rng, (2, 3, 3, 3))}, (2, 4, 5), (3, 9, 10))
    sized = model([helper.make_node("Resize", ["x", "", "", "sizes"], ["up"], name="sized", mode="nearest",
                                    axes=[2, 3]),
                   helper.make_node("Conv", ["up", "w"], ["y"], name="after", pads=[1, 1, 1, 1])],
                  {"sizes": np.array([6, 9], np.int64), "w": sparse(rng, (3, 2, 3, 3))}, (2, 3, 3), (3, 6, 9), opset=18)
    return {"auto_pad SAME_UPPER": (same, (2, 7, 7)), "ConvTranspose output_shape": (shaped, (2, 4, 5)),
            "Resize sizes (x2, x3)": (sized, (2, 3, 3))}


@pytest.mark.parametrize("case", ["auto_pad SAME_UPPER", "ConvTranspose output_shape", "Resize sizes (x2, x3)"])
def test_geometry_from_other_attributes_computes_what_onnxruntime_computes(case):
    built, in_shape = attribute_variants()[case]
    x = np.random.default_rng(4).normal(size=(16, *in_shape)).astype(np.float32)
    expected = onnxruntime_run(built, x)
    graph = import_onnx(built)
    computed = run_float(graph, x.reshape(len(x), -1))[0][graph.output]
    np.testing.assert_allclose(computed.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)


def test_bits_and_layer_bits_quantize_a_convolution():
    built = CASES["3x3, pads 1"][0]()
    x = np.random.default_rng(5).normal(size=(64, 3, 8, 8)).astype(np.float32)
    compiled = undense.compile(built, calibration=x, bits=6, layer_bits={"conv": 4})
    (layer,) = compiled.graph.nodes
    assert layer.weight_bits == 4 and np.abs(layer.kernel).max() <= 7
    assert compiled.graph.quant[layer.output].bits == 4 and compiled.graph.quant[compiled.graph.input].bits == 6


def test_a_conv_whose_output_has_no_pixel_is_refused():
    """A kernel wider than the padded input: ONNX's shape inference lets it through with a width of 0."""
    built = conv((1, 3, 2), 2, (2, 3))
    with pytest.raises(UndenseError, match=r"node 'conv' \(Conv\): its attributes give an output of \[2, 2, 0\]"):
        undense.compile(built, calibration=np.zeros((4, 6)))
