"""The resource estimate: block and DSP arithmetic by hand, the memory list against the Verilog the hardware
writes, and the fold refusing what does not fit."""
import re

import numpy as np
import onnx
import pytest
from conv_models import conv_chain

import undense
from undense.compiler.resources import bram_blocks, dsp_blocks, layer_cost, memory_style, spram_blocks
from undense.errors import UndenseError
from undense.hw.emit import emit_verilog, instances
from undense.runtime.synthetic import mlp, residual_block


@pytest.mark.parametrize("depth,width,family,blocks", [
    (218, 13, "ecp5", 1),     # 1024 x 18
    (128, 43, "ecp5", 2),     # 512 x 36, two wide
    (4096, 9, "ecp5", 2),     # 2048 x 9, two deep
    (1650, 17, "ice40", 9),   # 2048 x 2, nine wide
    (256, 16, "ice40", 1),
    (512, 20, "ice40", 3),    # 512 x 8, three wide
])
def test_block_ram_count(depth, width, family, blocks):
    assert bram_blocks(depth, width, family) == blocks


@pytest.mark.parametrize("a,b,family,blocks", [
    (8, 9, "ecp5", 1), (17, 17, "ecp5", 1), (20, 17, "ecp5", 2), (21, 17, "ice40", 2), (17, 17, "ice40", 1),
    (40, 40, "ice40", 9),
    (3, 4, "ice40", 0),       # a 7-bit product: synth_ice40 builds it in logic
    (3, 4, "ecp5", 1),
])
def test_dsp_tiles(a, b, family, blocks):
    assert dsp_blocks(a, b, family) == blocks


def test_placement_policy():
    assert memory_style(512, 8, "ecp5", rom=False) == "block"
    assert memory_style(64, 20, "ecp5", rom=False) == "distributed"
    assert memory_style(64, 50, "ecp5", rom=True) == "logic"  # a small ROM is LUTs
    assert memory_style(65, 50, "ecp5", rom=True) == "block"
    assert memory_style(32, 8, "ice40", rom=False) == "logic"   # iCE40 has no LUT RAM
    # weights go to the UP5K's SPRAM once they would fill SPRAM_MIN_BLOCKS (4) EBRs, never on ECP5
    assert memory_style(3306, 16, "ice40", rom=True, weights=True) == "huge"
    assert memory_style(1024, 16, "ice40", rom=True, weights=True) == "huge"   # 256 x 16, four deep
    assert memory_style(768, 16, "ice40", rom=True, weights=True) == "block"   # three EBRs
    assert memory_style(3306, 16, "ecp5", rom=True, weights=True) == "block"


@pytest.mark.parametrize("depth,width,blocks", [(3306, 16, 1), (1636, 17, 2), (40000, 8, 3)])
def test_spram_count(depth, width, blocks):
    assert spram_blocks(depth, width, "ice40") == blocks  # 16K words of 16 bits each


def verilog_memories(verilog: str) -> dict[str, tuple[int, int, str]]:
    """name -> (depth, width, placement) of every pinned memory, names as `layer.pe0.weights`."""
    found = {}
    pattern = re.compile(r'\(\* ram_style = "(\w+)" \*\)\s*\(\* rom_style = "\w+" \*\)\s*'
                         r'reg \[(\d+):0\] \\?(\w+) +\[(\d+):0\];')  # `table` is a keyword: \table
    for path, text in instances(verilog):
        for style, high, name, last in pattern.findall(text):
            found[f"{path}.{name}"] = (int(last) + 1, int(high) + 1, style)
    return found


def sources(kind: str) -> tuple[onnx.ModelProto, tuple[int, ...]]:
    """A model of each kind of unit, with the shape of its input."""
    if kind == "conv":  # ConvTranspose, 3x3, depthwise and 1x1 Conv: lanes that look up and pair their events
        return conv_chain(), (3, 4, 5)
    if kind == "residual":
        return residual_block(12), (12,)
    return mlp([12, 40, 24], ["Relu", "Sigmoid"], density=0.3), (12,)


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
@pytest.mark.parametrize("kind", ["mlp", "residual", "conv"])
def test_estimate_lists_the_memories_the_hardware_builds(tmp_path, family, kind):
    source, in_shape = sources(kind)
    x = np.random.default_rng(0).normal(size=(64, *in_shape)).astype(np.float32)
    part = {"ecp5": "ecp5-85k", "ice40": "ice40-up5k"}[family]  # placement is decided for the compiled target
    bits = 4 if (kind, family) == ("conv", "ice40") else 8  # the UP5K takes the convolutions at 4 bits
    graph = undense.compile(source, calibration=x, target_name=part, bits=bits).graph
    verilog = emit_verilog(graph, tmp_path, family=family).read_text()
    pinned = verilog_memories(verilog)
    estimated = {use.name: (use.depth, use.width, use.style)
                 for node in graph.nodes for use in layer_cost(graph, node, family).memories}
    assert pinned == estimated
    assert any(name.endswith("_skip0.storage") for name in pinned) == (kind == "residual")


def test_a_model_too_big_for_the_target_names_resource_and_layer():
    x = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    with pytest.raises(UndenseError) as error:
        undense.compile(mlp([64, 512, 512, 64], ["Relu", "Relu", "Sigmoid"]), calibration=x,
                        target_name="ice40-up5k")
    message = str(error.value)
    assert "block RAMs (ice40-up5k has 30)" in message
    assert "SPRAMs (ice40-up5k has 4)" in message
    assert "layer '" in message
    assert "at --bits" in message  # the widest quantization that fits
