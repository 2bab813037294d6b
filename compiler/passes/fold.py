"""fold: choose every Dense layer's grid of processing elements (PEs) and predict cycles per image.

A Dense layer's unit (hw/dense_unit.py) is `lanes` x `groups` PEs: its input arrives on `lanes` lanes (its
producer's groups) and it drains its rows on `groups` lanes. Its cycles per image depend on the data: on each
image, the busiest PE's weight entries over the events that arrived, or its drain, whichever is longer. The
fold predicts them on the calibration set's activations (compiler/activity.py): the mean and the 99th
percentile per layer. Layers form a pipeline: the slowest layer's mean sets the cycles per image.

Starting from one PE a layer, the fold gives the slowest layer more groups, or its producer more groups (which
gives it more lanes), whichever helps it most, while the design still fits the target (the resource estimate's
call: DSPs, block RAM, SPRAM, and the share of the LUTs the target's clock leaves room for: `lut_fill`,
data/targets.json). With a target in images per second it stops at the first grid that reaches
it. Every grid is weighed on the graph balanced for it (passes/balance.py: each hidden tensor's neurons ordered so
that the PEs share the work), and the graph leaves the fold balanced for the grid chosen. The two inputs of an Add
(and its output) must have the same lanes, so the layers that make them grow together; the output layer's groups
are bounded by the output stream's width.
"""
from dataclasses import replace

import numpy as np

from undense.compiler import activity, golden
from undense.compiler.ir import Edge, Fold, QAdd, QDense, QGraph
from undense.compiler.passes import balance
from undense.compiler.resources import LayerCost, code_bits, layer_cost, total
from undense.compiler.targets import Target
from undense.errors import DoesNotFit, UndenseError
from undense.hw import conv_unit

# The widest output transfer (the output layer's groups x its code bits; one code always fits): 64 bits on ECP5,
# one code on the UP5K, whose 48-pin package has no pins to spare
OUTPUT_PORT_BITS = {"ecp5": 64, "ice40": 0}
RESOURCE_NAMES = {"dsp": "DSP multipliers", "bram": "block RAMs", "spram": "SPRAMs", "lut": "LUTs"}


class Folding:
    """The grid being chosen: groups per Dense layer, the lanes they give every tensor, and the costs and
    per-image cycles of each layer at the current grid (computed once per grid), on the graph balanced for it
    (passes/balance.py)."""

    def __init__(self, graph: QGraph, target: Target, values: dict[str, np.ndarray]):
        self.graph, self.target, self.values = graph, target, values
        self.dense = {n.name: n for n in graph.nodes if isinstance(n, QDense)}
        self.clusters = tied_layers(graph)
        self.groups = {name: 1 for name in self.dense}
        self.arrival = balance.arrivals(graph, values)
        self._cycles: dict[tuple, np.ndarray] = {}
        self._costs: dict[tuple, LayerCost] = {}
        self._balanced: dict[tuple, tuple[QGraph, dict[str, np.ndarray]]] = {}

    def lanes(self, groups: dict[str, int] | None = None) -> dict[str, int]:
        groups = groups or self.groups
        lanes = {self.graph.input: 1}
        for node in self.graph.nodes:
            lanes[node.output] = groups[node.name] if isinstance(node, QDense) else lanes[node.inputs[0]]
        return lanes

    def balanced(self, lanes: dict[str, int]) -> tuple[QGraph, dict[str, np.ndarray]]:
        """The graph with its hidden tensors ordered for these lanes, and golden's values in that order."""
        key = tuple(sorted(lanes.items()))
        if key not in self._balanced:
            self._balanced[key] = balance.balance(self.graph, lanes, self.arrival, self.values)
        return self._balanced[key]

    def node(self, name: str, lanes: dict[str, int]):
        return next(n for n in self.balanced(lanes)[0].nodes if n.name == name)

    def grid(self, node, lanes: dict[str, int]) -> tuple[int, int]:
        if isinstance(node, QAdd):
            return lanes[node.output], 1
        return lanes[node.input], lanes[node.output]

    def cycles(self, node, lanes: dict[str, int]) -> np.ndarray:
        key = (node.name, *self.grid(node, lanes), *(lanes[t] for t in node.inputs))
        if key not in self._cycles:
            graph, values = self.balanced(lanes)
            inputs = {t: values[t] for t in node.inputs}
            present = activity.presence(graph, inputs, lanes)
            self._cycles[key] = activity.layer_cycles(graph, self.node(node.name, lanes), present, inputs, lanes)
        return self._cycles[key]

    def cost(self, node, lanes: dict[str, int]) -> LayerCost:
        key = (node.name, *self.grid(node, lanes))
        if key not in self._costs:
            graph = self.balanced(lanes)[0]
            block, widths = activity.blocks(graph, lanes), activity.row_widths(graph, lanes)
            graph = graph.replace_edges({t: replace(e, lanes=lanes[t], block=block.get(t, 1),
                                                    row_width=widths.get(t, 0)) for t, e in graph.edges.items()})
            self._costs[key] = layer_cost(graph, self.node(node.name, lanes), self.target.family,
                                          *self.grid(node, lanes))
        return self._costs[key]

    def means(self, groups: dict[str, int] | None = None) -> dict[str, float]:
        lanes = self.lanes(groups)
        return {node.name: float(self.cycles(node, lanes).mean()) for node in self.graph.nodes}

    def costs(self, groups: dict[str, int] | None = None) -> list[LayerCost]:
        lanes = self.lanes(groups)
        return [self.cost(node, lanes) for node in self.graph.nodes]

    def grown(self, layer: str, step: int = 1) -> dict[str, int] | None:
        """The groups with `layer`'s cluster `step` groups wider, or None where it cannot grow."""
        cluster = self.clusters[layer]
        if cluster is None:
            return None  # tied to the model's input
        groups = {**self.groups, **{name: self.groups[name] + step for name in cluster}}
        for name in cluster:
            node = self.dense[name]
            if groups[name] > node.out_rows or not can_spread(self.graph, node):
                return None
            limit = OUTPUT_PORT_BITS[self.target.family]
            if node.output == self.graph.output and groups[name] * output_bits(self.graph, node) > limit:
                return None
        return groups

    def moves(self, slowest: str) -> list[dict[str, int]]:
        """Grids that may speed the slowest layer up: more groups for it, or for what feeds it."""
        node = next(n for n in self.graph.nodes if n.name == slowest)
        candidates = [slowest] if isinstance(node, QDense) else []
        for tensor in node.inputs:
            producer = next((n for n in self.graph.nodes if n.output == tensor), None)
            if producer is not None and isinstance(producer, QDense):
                candidates.append(producer.name)
        steps = [(name, step) for name in dict.fromkeys(candidates)
                 for step in sorted({1, self.next_share(name) if self.dense[name].is_convolution else 1})]
        return [grid for grid in (self.grown(name, step) for name, step in steps) if grid is not None]

    def next_share(self, layer: str) -> int:
        """How many more groups it takes for each of a convolution's groups to hold fewer output channels: a step
        of one can leave them as unevenly shared as before and the layer no faster (32 channels: 9 groups hold 4
        each, 10 still do, 11 hold 3), where this step is the next that shares them better. (A Dense layer's rows
        are many and the balance pass deals them out: it grows one group at a time.)"""
        rows, groups = self.dense[layer].out_rows, self.groups[layer]
        share = -(-rows // groups)
        wider = next((more for more in range(groups + 1, rows + 1) if -(-rows // more) < share), groups + 1)
        return wider - groups


def can_spread(graph: QGraph, node: QDense) -> bool:
    """Whether the layer may have several groups: a Dense layer, or a convolution the hardware scatters whose
    map only convolutions read."""
    return not node.is_convolution or (conv_unit.scatters(node) and feeds_convolutions(graph, node.output))


def feeds_convolutions(graph: QGraph, tensor: str) -> bool:
    """Whether only convolution units read `tensor` (through Adds whose other inputs convolutions make too): only
    they read a feature map in runs of a channel (ir.Edge.block), as a convolution unit with several groups sends
    it, and an Add's inputs must travel in the same order."""
    if tensor == graph.output:
        return False
    for consumer in graph.consumers(tensor):
        if isinstance(consumer, QAdd):
            if not (all(made_by_convolutions(graph, t) for t in consumer.inputs)
                    and feeds_convolutions(graph, consumer.output)):
                return False
        elif not conv_unit.scatters(consumer):
            return False
    return True


def made_by_convolutions(graph: QGraph, tensor: str) -> bool:
    """Whether a convolution unit makes `tensor`, or an Add of tensors convolution units make."""
    producer = graph.producer(tensor)
    if isinstance(producer, QAdd):
        return all(made_by_convolutions(graph, t) for t in producer.inputs)
    return producer is not None and conv_unit.scatters(producer)


def output_bits(graph: QGraph, node: QDense) -> int:
    return code_bits(graph, node.output, node.acc_bits)


def tied_layers(graph: QGraph) -> dict[str, tuple[str, ...] | None]:
    """Dense layer -> the layers whose groups must stay equal to its own (an Add's inputs have the same lanes);
    None for a layer tied to the model's input, whose one lane cannot grow."""
    parent = {tensor: tensor for tensor in graph.sizes}

    def root(tensor):
        while parent[tensor] != tensor:
            tensor = parent[tensor]
        return tensor

    for node in graph.nodes:
        if isinstance(node, QAdd):
            for tensor in (*node.inputs, node.output):
                parent[root(tensor)] = root(node.output)
    members: dict[str, list[str]] = {}
    for node in graph.nodes:
        if isinstance(node, QDense):
            members.setdefault(root(node.output), []).append(node.name)
    fixed = root(graph.input)
    return {name: None if key == fixed else tuple(names) for key, names in members.items() for name in names}


def overflow(costs: list[LayerCost], available: dict[str, int]) -> list[str]:
    """The resources the design needs more of than `available` (none when it fits)."""
    needed = total(costs)
    return [resource for resource in RESOURCE_NAMES if needed[resource] > available[resource]]


def too_big(costs: list[LayerCost], target: Target, resources: list[str], advice: str) -> DoesNotFit:
    needed, available = total(costs), target.capacity()
    shortfalls = " and ".join(f"{needed[r]:,} {RESOURCE_NAMES[r]} ({target.name} has {available[r]:,})"
                              for r in resources)
    biggest = max(costs, key=lambda cost: getattr(cost, resources[0]))
    return DoesNotFit(
        f"the model needs {shortfalls} on the {target.device}; layer '{biggest.name}' alone needs "
        f"{getattr(biggest, resources[0]):,} {RESOURCE_NAMES[resources[0]]}: {advice}")


def grow(folding: Folding, cycles_per_image: float | None) -> None:
    """More groups where they speed the slowest layer up most, while the design fits, until the slowest layer
    reaches `cycles_per_image` (None: as fast as it goes)."""
    while True:
        means = folding.means()
        slowest = max(means, key=means.get)
        if cycles_per_image is not None and means[slowest] <= cycles_per_image:
            return
        best, best_cycles = None, means[slowest]
        for groups in folding.moves(slowest):
            faster = folding.means(groups)
            if max(faster.values()) < best_cycles and not overflow(folding.costs(groups),
                                                                      folding.target.growth_budget()):
                best, best_cycles = groups, max(faster.values())
        if best is None:
            return
        folding.groups = best


def check_rate(images_per_second: float | None) -> None:
    if images_per_second is not None and images_per_second <= 0:
        raise UndenseError(f"--images-per-second must be positive, not {images_per_second:g}")


def fold(graph: QGraph, target: Target, images_per_second: float | None = None,
         samples: np.ndarray | None = None, groups: dict[str, int] | None = None) -> QGraph:
    """The graph with every layer's grid and predicted cycles, its edges' lanes set; `samples` are the
    calibration inputs the cycles are predicted on (typical inputs where there are none). `groups` fixes the
    groups of the Dense layers it names instead of choosing them (a layer it leaves out gets one)."""
    check_rate(images_per_second)
    values = golden.run_codes(graph, activity.input_codes(graph, samples))
    folding = Folding(graph, target, values)
    if groups is not None:
        folding.groups.update(groups)
    start = folding.costs()
    short = overflow(start, target.capacity())
    if short:
        raise too_big(start, target, short, "it does not fit even with one processing element a layer")
    wanted = None if images_per_second is None else target.clock_mhz * 1e6 / images_per_second
    if groups is None:
        grow(folding, wanted)
    means = folding.means()
    if wanted is not None and max(means.values()) > wanted:
        slowest = max(means, key=means.get)
        reached = target.clock_mhz * 1e6 / means[slowest]
        raise UndenseError(
            f"layer '{slowest}' cannot reach {images_per_second:g} images/s at {target.clock_mhz:g} MHz on the "
            f"{target.device}: folded as far as it fits it takes {means[slowest]:,.0f} cycles per image, so at "
            f"most {reached:,.0f} images/s; ask for fewer images per second or choose a bigger target")
    lanes = folding.lanes()
    graph = folding.balanced(lanes)[0]
    folded = []
    for node in graph.nodes:
        cycles = folding.cycles(node, lanes)
        lanes_in, groups = folding.grid(node, lanes)
        where = {use.name.removeprefix(f"{node.name}."): use.style for use in folding.cost(node, lanes).memories}
        folded.append(replace(node, fold=Fold(lanes_in, groups, round(float(cycles.mean()), 2),
                                              float(np.percentile(cycles, 99)), where)))
    block, widths = activity.blocks(graph, lanes), activity.row_widths(graph, lanes)
    edges = {tensor: Edge(lanes[tensor], edge.sparse, edge.offset, block.get(tensor, 1), widths.get(tensor, 0))
             for tensor, edge in graph.edges.items()}
    return graph.with_nodes(folded).replace_edges(edges)
