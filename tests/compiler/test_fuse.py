import numpy as np
from onnx import helper

from undense.compiler.frontend import import_onnx
from undense.compiler.ir import Dense
from undense.compiler.passes.fuse import fuse
from undense.compiler.reference import run_float
from undense.compiler.verify import verify
from undense.runtime.synthetic import mlp, model, sparse_matrix


def same_function(before, after):
    x = np.random.default_rng(0).normal(size=(9, before.sizes[before.input]))
    np.testing.assert_allclose(run_float(after, x)[0][after.output], run_float(before, x)[0][before.output],
                               rtol=1e-9, atol=1e-12)


def test_matmul_add_activation_become_one_layer():
    graph = import_onnx(mlp([6, 10, 4], ["Relu", "Sigmoid"], use_gemm=False))
    assert len(graph.nodes) == 6  # MatMul, Add, Relu twice
    fused = fuse(graph)
    verify(fused, "fuse")
    assert [(n.name, n.activation.kind) for n in fused.nodes] == [("layer0_matmul", "relu"),
                                                                  ("layer1_matmul", "sigmoid")]
    same_function(graph, fused)


def test_batchnorm_and_mul_fold_into_the_layer_before_keeping_its_zeros():
    rng = np.random.default_rng(1)
    weight = sparse_matrix(rng, 8, 6, 0.3)
    inits = {"w": weight, "gamma": rng.uniform(0.5, 2, 8).astype(np.float32),
             "beta": rng.normal(size=8).astype(np.float32), "mean": rng.normal(size=8).astype(np.float32),
             "var": rng.uniform(0.5, 2, 8).astype(np.float32), "k": np.array(3.0, np.float32)}
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node("BatchNormalization", ["h", "gamma", "beta", "mean", "var"], ["b"], name="bn"),
             helper.make_node("Mul", ["b", "k"], ["m"], name="scale"),
             helper.make_node("Relu", ["m"], ["y"], name="act")]
    graph = import_onnx(model(nodes, inits, 6, 8))
    fused = fuse(graph)
    (layer,) = fused.nodes
    assert isinstance(layer, Dense) and layer.name == "fc" and layer.activation.kind == "relu"
    np.testing.assert_array_equal(layer.weight == 0, weight == 0)
    same_function(graph, fused)


def test_a_tensor_used_twice_is_not_fused_away():
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node("Relu", ["h"], ["a"], name="act"),
             helper.make_node("Add", ["h", "a"], ["y"], name="residual")]
    graph = import_onnx(model(nodes, {"w": sparse_matrix(rng, 5, 5, 0.5)}, 5, 5))
    fused = fuse(graph)
    assert len(fused.nodes) == 3
    same_function(graph, fused)
