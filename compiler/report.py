"""compile.json: per-layer and whole-model figures of a compiled graph (keys in DESIGN.md).

Per layer, `nnz` counts the weights stored (a convolution's nonzero kernel weights), `macs` the multiplies an
image really needs (each nonzero weight times each input it touches: the nonzeros of the layer's matrix),
`dense_macs` what a dense implementation does (every weight at every position, padding and, for a
ConvTranspose, inserted zeros included)."""
import numpy as np

from undense.compiler.ir import QAdd, QDense, QGraph
from undense.compiler.resources import RESOURCES, LayerCost, code_bits, layer_cost, total
from undense.compiler.targets import Target
from undense.hw import conv_unit


def layer_report(graph: QGraph, node: QDense | QAdd, cost: LayerCost) -> dict:
    estimate = {resource: getattr(cost, resource) for resource in RESOURCES}
    output_quant = graph.quant[node.output]
    act_bits = output_quant.bits if output_quant is not None else node.acc_bits
    input_bits = max(code_bits(graph, tensor) for tensor in node.inputs)
    if isinstance(node, QAdd):
        return {"name": node.name, "op": "add", "shape": [node.features], "nnz": 0, "density": 1.0,
                "weight_bits": 0, "act_bits": act_bits, "input_bits": input_bits, "pe": node.fold.pe,
                "lanes": node.fold.lanes, "groups": node.fold.groups,
                "cycles": node.fold.cycles, "cycles_p99": node.fold.cycles_p99, "activation": "identity",
                "acc_bits": None, "weight_memory_bits": 0, "estimate": estimate, "memories": []}
    out_features, in_features = node.out_features, node.weight.in_features
    if node.kernel is None:  # what is stored: the matrix, or a convolution's kernel
        nnz, size = node.weight.nnz, out_features * in_features
    else:
        nnz, size = int(np.count_nonzero(node.kernel)), node.kernel.size
    return {"name": node.name, "op": "dense" if node.geometry is None else node.geometry.op,
            "shape": [out_features, in_features], **_geometry_report(graph, node),
            "nnz": nnz, "density": round(nnz / size, 6),
            "macs": node.weight.nnz, "hardware_unit": conv_unit.scatters(node) or not node.is_convolution,
            "dense_macs": out_features * in_features if node.geometry is None else node.geometry.dense_macs(),
            "weight_bits": node.weight_bits,
            "act_bits": act_bits, "input_bits": input_bits, "pe": node.fold.pe, "lanes": node.fold.lanes,
            "groups": node.fold.groups, "cycles": node.fold.cycles, "cycles_p99": node.fold.cycles_p99,
            "input_events": graph.edges[node.input].sparse,
            "activation": node.activation,
            "acc_bits": node.acc_bits,
            "weight_memory_bits": sum(use.depth * use.width for use in cost.memories if use.name.endswith(".weights")),
            "table_entries": 0 if node.table is None else len(node.table), "estimate": estimate,
            "memories": [{"name": use.name, "depth": use.depth, "width": use.width, "placement": use.style,
                          "bram": use.blocks, "spram": use.spram} for use in cost.memories]}


def _geometry_report(graph: QGraph, node: QDense) -> dict:
    """Per-sample shapes in and out, and a convolution's kernel, strides, pads and upsampling."""
    shapes = {"in_shape": list(graph.shapes.get(node.input, (node.in_features,))),
              "out_shape": list(graph.shapes.get(node.output, (node.out_features,)))}
    if node.geometry is None:
        return shapes
    geometry = node.geometry
    return {**shapes, "in_shape": list(geometry.in_shape), "out_shape": list(geometry.out_shape),
            "kernel": list(geometry.kernel_shape), "strides": list(geometry.stride), "pads": list(geometry.pads),
            "groups": geometry.groups, "upsample": list(geometry.upsample)}


def compile_report(graph: QGraph, target: Target, options: dict, calibration: dict) -> dict:
    """`calibration` is the pipeline's calibration record (compiler/calibration.py), reported as it is."""
    costs = [layer_cost(graph, node, target.family) for node in graph.nodes]
    layers = [layer_report(graph, node, cost) for node, cost in zip(graph.nodes, costs, strict=True)]
    slowest = max(layers, key=lambda layer: layer["cycles"])
    cycles = slowest["cycles"]
    return {
        "target": target.name,
        "clock_mhz": target.clock_mhz,
        "options": options,
        "layers": layers,
        "total_nnz": sum(layer["nnz"] for layer in layers),
        "total_macs": sum(layer.get("macs", 0) for layer in layers),
        "total_dense_macs": sum(layer.get("dense_macs", 0) for layer in layers),
        "total_pe": sum(layer["pe"] for layer in layers),
        "weight_memory_bits": sum(layer["weight_memory_bits"] for layer in layers),
        "estimate": total(costs),
        "capacity": target.capacity(),
        "predicted_cycles_per_image": cycles,
        "predicted_cycles_per_image_p99": max(layer["cycles_p99"] for layer in layers),
        "edges": {tensor: vars(edge) for tensor, edge in graph.edges.items()},
        "slowest_layer": slowest["name"],
        "predicted_images_per_second": round(target.clock_mhz * 1e6 / cycles, 1),
        "calibration": calibration,
    }
