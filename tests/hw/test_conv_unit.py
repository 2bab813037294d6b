"""The convolution unit's description (hw/conv_unit.py): its taps scatter exactly the convolution's matrix, each
PE's share adds up to the layer, and the fold spreads a convolution only where convolutions read its map."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import undense
from undense.compiler import activity
from undense.compiler.geometry import Conv2d, conv_output_size, conv_transpose_output_size
from undense.hw import conv_unit
from undense.hw.dense_unit import lane_features

DIGITS28 = Path(__file__).parents[2] / "models" / "digits28"


@st.composite
def geometries(draw) -> Conv2d:
    """Every kind the unit scatters: ConvTranspose (any stride, pads, output padding), Conv of stride 1, nearest
    Upsample + Conv, grouped and depthwise."""
    groups = draw(st.sampled_from([1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    pads = tuple(draw(st.integers(0, k - 1)) for k in (*kernel, *kernel))
    kind = draw(st.sampled_from(["conv_transpose", "conv", "upsample_conv"]))
    if kind == "conv_transpose":
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        out = tuple(conv_transpose_output_size(size, k, s, pads[axis], pads[axis + 2], 0)
                    for axis, (size, k, s) in enumerate(zip((h, w), kernel, stride, strict=True)))
        assume(min(out) >= 1)
        return Conv2d((c_in, h, w), (c_out, *out), kernel, stride, pads, groups, transposed=True)
    upsample = (1, 1) if kind == "conv" else (draw(st.integers(2, 3)), draw(st.integers(2, 3)))
    out = tuple(conv_output_size(size * u, k, 1, pads[axis], pads[axis + 2])
                for axis, (size, k, u) in enumerate(zip((h, w), kernel, upsample, strict=True)))
    assume(min(out) >= 1)
    return Conv2d((c_in, h, w), (c_out, *out), kernel, (1, 1), pads, groups, upsample=upsample)


@settings(max_examples=150, deadline=None)
@given(geometry=geometries(), seed=st.integers(0, 2**16))
def test_taps_scatter_exactly_the_convolutions_matrix(geometry, seed):
    rng = np.random.default_rng(seed)
    kernel = rng.integers(-3, 4, size=geometry.kernel_shape) * (rng.random(geometry.kernel_shape) < 0.6)
    taps = conv_unit.scatter_taps(geometry, kernel)
    assert np.all(taps.weights != 0)
    np.testing.assert_array_equal(conv_unit.scatter_matrix(geometry, taps).toarray(),
                                  geometry.matrix(kernel).toarray())


@settings(max_examples=60, deadline=None)
@given(geometry=geometries(), seed=st.integers(0, 2**16), lanes=st.integers(1, 3), groups=st.integers(1, 2),
       blocked=st.booleans())
def test_pe_blocks_hold_their_lanes_channels_taps_and_each_position_its_origin(geometry, seed, lanes, groups,
                                                                                blocked):
    """Over a grid's PEs: a PE holds, column by column, its group's taps of exactly the channels its lane carries
    (in runs of a channel where the input edge has them, each lane has channels of its own), and a lane's origins
    are its positions'."""
    rng = np.random.default_rng(seed)
    kernel = rng.integers(-3, 4, size=geometry.kernel_shape) * (rng.random(geometry.kernel_shape) < 0.6)
    taps = conv_unit.scatter_taps(geometry, kernel)
    c_in, h_in, w_in = geometry.in_shape
    in_block = h_in * w_in if blocked else 1
    sy, sx = conv_unit.stride(geometry)
    held = 0
    for lane in range(lanes):
        features = lane_features(geometry.in_features, lanes, lane, in_block)
        channel, position = features // (h_in * w_in), features % (h_in * w_in)
        carried = sorted(set(channel.tolist()))
        for group in range(groups):
            part = conv_unit.block(geometry, taps, lanes, groups, lane, group, conv_unit.Flow(in_block))
            channels, weights, offsets, dy, dx = conv_unit.group_taps(taps, geometry, groups, group)
            for c in carried:
                column = part.entries[part.starts[c]:part.starts[c] + part.counts[c]]
                expected = [(int(weights[t]), int(offsets[t]), int(dy[t]), int(dx[t]))
                            for t in np.flatnonzero(channels == c)] or [(0, 0, 0, 0)]
                assert list(column) == expected
            assert len(part.entries) == max(sum(max(int(np.sum(channels == c)), 1) for c in carried), 1)
            held += sum(1 for entry in part.entries if entry[0] != 0)
            y, x = position // w_in * sy, position % w_in * sx
            expected = [(int(c), int(a), int(b)) for c, a, b in zip(channel, y, x, strict=True)]
            assert list(part.origins) == expected
    if blocked:  # every channel on one lane: each tap held once
        assert held == len(taps.weights)


def test_the_28x28_generators_convolutions_are_spread_where_convolutions_read_them():
    """up1's map is read by conv2 only: it is spread over several groups (in runs of its 14 x 14 channels);
    conv2 makes the model's output, one channel: one group."""
    compiled = undense.compile(DIGITS28 / "generator.onnx", target_name="ecp5-85k")
    nodes = {node.name: node for node in compiled.graph.nodes}
    assert nodes["up1"].fold.groups > 1 and nodes["conv2"].fold.groups == 1
    assert compiled.graph.edges[nodes["up1"].output].block == 14 * 14
    assert compiled.graph.edges[nodes["fc"].output].block == 1
    assert nodes["conv2"].fold.lanes == nodes["up1"].fold.groups
    assert all(layer["hardware_unit"] for layer in compiled.report["layers"])


@pytest.mark.parametrize("lanes", [1, 3])
def test_a_channels_run_marks_each_lanes_last_event(lanes):
    """With runs of a channel, each lane's last position carries the end of the image even when it is zero."""
    values = np.zeros((2, 5 * 4), dtype=np.int64)
    present = activity.dense_unit.input_events(values, lanes, sparse=True, block=4)
    ends = sorted(lane_features(20, lanes, lane, 4)[-1] for lane in range(lanes))
    assert sorted(np.flatnonzero(present[0])) == ends


@settings(max_examples=150, deadline=None)
@given(geometry=geometries(), seed=st.integers(0, 2**16))
def test_a_windows_marks_bound_the_rows_each_input_row_reaches(geometry, seed):
    """In a rolling window, an input's `top` is the last output row its row's taps reach, and once its row has
    passed no later input reaches a row below its `done`: the window may drain those. The window holds every row
    one input reaches and one more."""
    rng = np.random.default_rng(seed)
    kernel = rng.integers(-3, 4, size=geometry.kernel_shape) * (rng.random(geometry.kernel_shape) < 0.6)
    taps = conv_unit.scatter_taps(geometry, kernel)
    _, h_in, _ = geometry.in_shape
    _, h_out, _ = geometry.out_shape
    sy = conv_unit.stride(geometry)[0]
    reached = [{y * sy + dy for dy in taps.dy.tolist() if 0 <= y * sy + dy < h_out} for y in range(h_in)]
    rows, _ = conv_unit.window_shape(geometry, taps, groups=1)
    for y in range(h_in):
        top, done = conv_unit.window_marks(geometry, taps, y * sy)
        assert all(row <= top for row in reached[y])
        assert all(row >= done for later in reached[y + 1:] for row in later)
        assert max(reached[y], default=top) - min(reached[y], default=top) < rows - 1
    assert conv_unit.window_marks(geometry, taps, (h_in - 1) * sy)[1] == h_out


@pytest.mark.parametrize(("lanes", "channels"), [(1, 3), (2, 4), (3, 3)])
def test_a_map_that_travels_row_by_row_sends_each_rows_end(lanes, channels):
    """Row by row, a lane carries the same channels as in runs of a channel, each row of all of them before the
    next; the last position of every row travels even when it is zero."""
    height, width = 3, 4
    count = channels * height * width
    values = np.zeros((1, count), dtype=np.int64)
    present = activity.dense_unit.input_events(values, lanes, sparse=True, block=height * width, row_width=width)
    ends = []
    for lane in range(lanes):
        features = lane_features(count, lanes, lane, height * width, width)
        assert sorted(features) == sorted(lane_features(count, lanes, lane, height * width))
        rows = (features % (height * width)) // width
        assert list(rows) == sorted(rows)
        ends += list(features[len(features) // height - 1::len(features) // height])
    assert sorted(np.flatnonzero(present[0])) == sorted(ends)
