"""compile.json: per-layer and whole-model figures of a compiled graph (keys in DESIGN.md)."""
from undense.compiler.ir import QAdd, QDense, QGraph
from undense.compiler.resources import RESOURCES, LayerCost, code_bits, layer_cost, total
from undense.compiler.targets import Target


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
    return {"name": node.name, "op": "dense", "shape": [out_features, in_features], "nnz": node.weight.nnz,
            "density": round(node.weight.nnz / (out_features * in_features), 6), "weight_bits": node.weight_bits,
            "act_bits": act_bits, "input_bits": input_bits, "pe": node.fold.pe, "lanes": node.fold.lanes,
            "groups": node.fold.groups, "cycles": node.fold.cycles, "cycles_p99": node.fold.cycles_p99,
            "input_events": graph.edges[node.input].sparse,
            "activation": node.activation,
            "acc_bits": node.acc_bits,
            "weight_memory_bits": sum(use.depth * use.width for use in cost.memories if use.name.endswith(".weights")),
            "table_entries": 0 if node.table is None else len(node.table), "estimate": estimate,
            "memories": [{"name": use.name, "depth": use.depth, "width": use.width, "placement": use.style,
                          "bram": use.blocks, "spram": use.spram} for use in cost.memories]}


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
