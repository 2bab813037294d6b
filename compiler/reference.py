"""A float interpreter of the float IR: calibration, and the reference every float pass must keep."""
import numpy as np

from undense.compiler.ir import Add, Dense, Graph


def run_float(graph: Graph, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every tensor's value for a batch x (N, features), and every Dense's value before its activation."""
    values = {graph.input: np.asarray(x, dtype=np.float64).reshape(len(x), -1)}
    before_activation = {}
    for node in graph.nodes:
        if isinstance(node, Dense):
            pre = values[node.input] @ node.matrix().T + node.bias
            before_activation[node.output] = pre
            values[node.output] = node.activation.apply(pre)
        elif isinstance(node, Add):
            values[node.output] = values[node.inputs[0]] + values[node.inputs[1]]
    return values, before_activation
