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
    for tensor, codes in values.items():
        edge = graph.edges[tensor]
        found[tensor] = dense_unit.input_events(codes - edge.offset, lanes[tensor], edge.sparse,
                                                blocks(graph, lanes).get(tensor, 1))
    return found


def layer_cycles(graph: QGraph, node: QDense | QAdd, present: dict[str, np.ndarray],
                 lanes: dict[str, int]) -> np.ndarray:
    """The layer's cycles on each image."""
    if isinstance(node, QAdd):
        return add_unit.image_cycles(present[node.inputs[0]], present[node.inputs[1]], lanes[node.output],
                                     not graph.edges[node.output].sparse)
    counts, _ = column_work(node, lanes[node.input], lanes[node.output])
    block = blocks(graph, lanes)
    return dense_unit.image_cycles(present[node.input], counts, lanes[node.input], node.out_features,
                                   block.get(node.input, 1), block.get(node.output, 1))


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
    where a convolution unit with several groups makes it, single indices elsewhere."""
    found = {}
    for node in graph.nodes:
        if isinstance(node, QDense) and conv_unit.scatters(node) and lanes[node.output] > 1:
            _, height, width = node.geometry.out_shape
            found[node.output] = height * width
        elif isinstance(node, QAdd) and node.inputs[0] in found:  # an Add keeps its inputs' order
            found[node.output] = found[node.inputs[0]]
    return found


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
            counts[node.name] = dense_unit.events(*work, present[node.input], present[node.output],
                                                  lanes[node.input], node.table is not None)
    return counts
