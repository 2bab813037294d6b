import numpy as np

from undense.compiler.frontend import import_onnx
from undense.compiler.golden import run_codes
from undense.compiler.ir import SparseRows
from undense.compiler.passes.fuse import fuse
from undense.compiler.passes.quantize import quantize
from undense.compiler.passes.sparse_encode import sparse_encode
from undense.compiler.verify import verify
from undense.runtime.synthetic import mlp


def test_only_nonzeros_are_kept_and_the_graph_computes_the_same_bits():
    x = np.random.default_rng(0).normal(size=(50, 12))
    dense = quantize(fuse(import_onnx(mlp([12, 20, 7], ["Relu", "Tanh"], density=0.15))), x, bits=4)
    sparse = sparse_encode(dense)
    verify(sparse, "sparse_encode")
    for before, after in zip(dense.nodes, sparse.nodes, strict=True):
        assert isinstance(after.weight, SparseRows)
        assert after.weight.nnz == np.count_nonzero(before.weight)
        np.testing.assert_array_equal(after.weight.to_dense(), before.weight)
    codes = dense.quant[dense.input].quantize(x)
    for tensor, values in run_codes(dense, codes).items():
        np.testing.assert_array_equal(run_codes(sparse, codes)[tensor], values)


def test_rows_and_columns_round_trip():
    codes = np.array([[0, 3, 0, -1], [0, 0, 0, 0], [5, 0, 0, 0]])
    rows = SparseRows.from_dense(codes)
    assert rows.values.tolist() == [3, -1, 5] and rows.columns.tolist() == [1, 3, 0]
    assert rows.row_nnz.tolist() == [2, 0, 1]
    np.testing.assert_array_equal(rows.to_dense(), codes)
