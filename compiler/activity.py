"""What travels and what the units do, image by image, for a folded (or being folded) graph: the events on
every edge, the cycles of every layer and the counts its counters must show. The units' descriptions
(hw/dense_unit.py, hw/add_unit.py) say how; this module feeds them golden's codes.
"""
import numpy as np

from undense.compiler import golden
from undense.compiler.ir import QAdd, QDense, QGraph
from undense.hw import add_unit, conv_unit, dense_unit

SAMPLES = 1024        # calibration inputs the fold predicts cycles from, at most
DEFAULT_SAMPLES = 256  # without a calibration set: normal latents, or input codes uniform over their range
SEED = 0


def input_codes(graph: QGraph, samples: np.ndarray | None) -> np.ndarray:
    """The input codes the prediction runs on: the calibration set's, or typical ones where there is none."""
    rng = np.random.default_rng(SEED)
    if samples is not None and len(samples):
        return golden.quantize_input(graph, np.asarray(samples)[:SAMPLES])
    size = graph.sizes[graph.input]
    if graph.input_is_integer:
        params = graph.quant[graph.input]
        return rng.integers(params.qmin, params.qmax + 1, size=(DEFAULT_SAMPLES, size))
    return golden.quantize_input(graph, rng.standard_normal((DEFAULT_SAMPLES, size)))


def presence(graph: QGraph, values: dict[str, np.ndarray], lanes: dict[str, int]) -> dict[str, np.ndarray]:
    """Which values of every tensor travel as events, image by image, with `lanes` lanes per tensor."""
    found = {}
    block, widths = blocks(graph, lanes), row_widths(graph, lanes)
    for tensor, codes in values.items():
        edge = graph.edges[tensor]
        found[tensor] = dense_unit.input_events(codes - edge.offset, lanes[tensor], edge.sparse,
                                                block.get(tensor, 1), widths.get(tensor, 0))
    return found


def layer_cycles(graph: QGraph, node: QDense | QAdd, present: dict[str, np.ndarray], values: dict[str, np.ndarray],
                 lanes: dict[str, int]) -> np.ndarray:
    """The layer's cycles on each image (`values`: golden's codes of its inputs)."""
    if isinstance(node, QAdd):
        return add_unit.image_cycles(present[node.inputs[0]], present[node.inputs[1]], lanes[node.output],
                                     not graph.edges[node.output].sparse)
    counts, _ = column_work(node, lanes[node.input], lanes[node.output])
    block = blocks(graph, lanes)
    return dense_unit.image_cycles(present[node.input], values[node.input] - graph.edges[node.input].offset, counts,
                                   lanes[node.input], node.out_features, block.get(node.input, 1),
                                   block.get(node.output, 1), windowed(graph, node, lanes))


def column_work(node: QDense, lanes: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The entries each input column issues in each group's PE ([in, groups]) and the nonzero products it
    makes ([in]): over the layer's matrix (hw/dense_unit.py), or a convolution's taps (hw/conv_unit.py)."""
    if conv_unit.scatters(node):
        taps = conv_unit.scatter_taps(node.geometry, node.kernel)
        return conv_unit.column_counts(node.geometry, taps, groups), conv_unit.macs(node.geometry, taps)
    codes = node.dense_codes()
    return dense_unit.column_counts(codes, lanes, groups), (codes != 0).sum(axis=0)


def blocks(graph: QGraph, lanes: dict[str, int]) -> dict[str, int]:
    """The runs of indices each tensor travels in (ir.Edge.block) with these lanes: a feature map's channels
    where a convolution unit with several groups makes it or it travels row by row, single indices elsewhere."""
    found = {}
    widths = row_widths(graph, lanes)
    for node in graph.nodes:
        if isinstance(node, QDense) and conv_unit.scatters(node) and (lanes[node.output] > 1
                                                                      or node.output in widths):
            _, height, width = node.geometry.out_shape
            found[node.output] = height * width
        elif isinstance(node, QAdd) and node.inputs[0] in found:  # an Add keeps its inputs' order
            found[node.output] = found[node.inputs[0]]
    return found


def row_widths(graph: QGraph, lanes: dict[str, int]) -> dict[str, int]:
    """The feature maps that travel row by row (ir.Edge.row_width: the map's width), with these lanes: those a
    convolution unit makes, whose groups hold as many channels each, and that only convolution units read, each
    through a rolling window of rows (hw/conv_unit.py)."""
    found = {}
    for node in graph.nodes:
        if not (isinstance(node, QDense) and conv_unit.scatters(node)) or node.output == graph.output:
            continue
        channels, _, width = node.geometry.out_shape
        readers = graph.consumers(node.output)
        if channels % lanes[node.output] == 0 and readers and all(
                isinstance(reader, QDense) and conv_unit.scatters(reader) for reader in readers):
            found[node.output] = width
    return found


def windowed(graph: QGraph, node: QDense, lanes: dict[str, int]) -> bool:
    """Whether the convolution accumulates in a rolling window of rows (hw/conv_unit.py): its input travels
    row by row and so does its output (or its groups hold one channel each, where the two orders agree)."""
    if not conv_unit.scatters(node) or node.input not in row_widths(graph, lanes):
        return False
    channels, _, width = node.geometry.out_shape
    groups = lanes[node.output]
    return (channels % groups == 0 and channels // groups * width >= conv_unit.MIN_ROW_POSITIONS
            and (channels == groups or node.output in row_widths(graph, lanes)))


def conv_flow(graph: QGraph, node: QDense) -> conv_unit.Flow:
    """How a convolution's maps travel and where its sums wait, in a graph whose edges are folded."""
    edge_in, edge_out = graph.edges[node.input], graph.edges[node.output]
    window = windowed(graph, node, tensor_lanes(graph))
    return conv_unit.Flow(edge_in.block, edge_in.row_width, window or edge_out.row_width > 0, window)


def tensor_lanes(graph: QGraph) -> dict[str, int]:
    return {tensor: edge.lanes for tensor, edge in graph.edges.items()}


def predicted_events(graph: QGraph, codes_in: np.ndarray) -> dict[str, dict[str, int]]:
    """The counts every layer's counters must show after these input codes, from golden's values alone."""
    values = golden.run_codes(graph, codes_in)
    lanes = tensor_lanes(graph)
    present = presence(graph, values, lanes)
    counts = {}
    for node in graph.nodes:
        if isinstance(node, QAdd):
            counts[node.name] = add_unit.events(present[node.inputs[0]], present[node.inputs[1]],
                                                present[node.output], not graph.edges[node.output].sparse)
        else:
            work = column_work(node, lanes[node.input], lanes[node.output])
            inputs = values[node.input] - graph.edges[node.input].offset
            seconds = conv_unit.seconds(node.geometry, present[node.input], inputs, lanes[node.input],
                                        conv_flow(graph, node)) if conv_unit.scatters(node) else None
            counts[node.name] = dense_unit.events(*work, present[node.input], inputs, present[node.output],
                                                  lanes[node.input], node.table is not None, seconds)
    return counts
