"""fuse: fold every diagonal layer (bias Add, Mul by a constant, BatchNormalization, an activation)
into the layer before it, so that matmul + bias + activation become one Dense.

A diagonal Dense y = f(d * x + c) after a Dense x = W v + b with no activation of
its own becomes y = f((d W) v + (d b + c)); d W has the zeros of W, so sparsity
is kept. A convolution's kernel takes d channel by channel, so d must be one value per channel there (as a
BatchNormalization's is). It is left alone where the intermediate tensor is observable: used twice, the graph
output, or quantized by a pre-quantized model.
"""
from dataclasses import replace

import numpy as np

from undense.compiler.functions import IDENTITY
from undense.compiler.ir import Dense, Graph


def _mergeable(graph: Graph, first, second: Dense) -> bool:
    if not (isinstance(first, Dense) and first.activation == IDENTITY and second.is_diagonal):
        return False
    if first.output == graph.output or first.output in graph.fixed_quant or len(graph.consumers(first.output)) != 1:
        return False
    scale = second.diagonal()
    per_channel = scale.reshape(first.channels, -1)
    if first.geometry is not None and not np.all(per_channel == per_channel[:, :1]):
        return False
    return first.weight_codes is None or np.all(scale == 1.0)


def _merge(first: Dense, second: Dense) -> Dense:
    scale = second.diagonal()
    kernel_scale = scale.reshape(first.channels, -1)[:, 0].reshape(-1, *[1] * (first.weight.ndim - 1))
    return replace(first, output=second.output, weight=kernel_scale * first.weight,
                   bias=scale * first.bias + second.bias, activation=second.activation)


def fuse(graph: Graph) -> Graph:
    nodes = list(graph.nodes)
    merged = True
    while merged:
        merged = False
        current = graph.with_nodes(nodes)
        for index, node in enumerate(nodes):
            if isinstance(node, Dense):
                first = current.producer(node.input)
                if first is not None and _mergeable(current, first, node):
                    nodes[nodes.index(first)] = _merge(first, node)
                    del nodes[index]
                    merged = True
                    break
    kept = {graph.input, *(m.output for m in nodes)}
    return replace(graph, nodes=tuple(nodes), sizes={t: n for t, n in graph.sizes.items() if t in kept},
                   shapes={t: shape for t, shape in graph.shapes.items() if t in kept})
