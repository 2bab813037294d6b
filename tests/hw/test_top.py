"""The whole accelerator of the bundled model under cocotb: gaps on the latents, back-pressure on the pixels."""
import undense
from undense.compiler import golden
from undense.hw.top import Accelerator


def test_bundled_model_top_level_matches_golden(run_stream_bench, generator_path):
    # folded for a modest rate: one PE a layer, a small design for a quick cocotb run
    compiled = undense.compile(generator_path, images_per_second=20_000)
    assert compiled.report["total_pe"] == 3
    graph = compiled.graph
    codes = golden.quantize_input(graph, compiled.random_inputs(3, seed=9))
    expected = golden.run_codes(graph, codes)[graph.output]
    run_stream_bench(Accelerator(graph), "undense_top", codes, expected, signed=True, gap=0.2, stall=0.3,
                     cycle_budget=int(20 * compiled.report["predicted_cycles_per_image"]))
