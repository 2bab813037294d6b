"""The event-driven Add unit (hw/elementwise.py) described in plain Python: its logic, cycles and events per
image.

Each lane merges the positions its two inputs sent, one a cycle; the unit stores nothing but the FIFO on its
shorter input (compiler/resources.skip_fifos).
"""
import numpy as np

from undense.compiler.numbers import MULTIPLIER_BITS, index_bits

OVERHEAD = 2  # its output register and the cycle a lane's first events wait for each other

EVENTS = {"adds": (), "stream_in": (), "stream_out": ()}  # none touches a memory of the unit


def merged(present_a: np.ndarray, present_b: np.ndarray) -> np.ndarray:
    """The positions a lane adds, per image: those either side sent. [images, features] booleans."""
    return present_a | present_b


def image_cycles(present_a: np.ndarray, present_b: np.ndarray, lanes: int, dense_out: bool) -> np.ndarray:
    """Cycles per image: the busiest lane's positions (all of them where the output is dense)."""
    both = np.ones_like(present_a) if dense_out else merged(present_a, present_b)
    return np.stack([both[:, lane::lanes].sum(axis=1) for lane in range(lanes)], axis=1).max(axis=1) + OVERHEAD


def events(present_a: np.ndarray, present_b: np.ndarray, sent: np.ndarray, dense_out: bool) -> dict[str, int]:
    added = sent if dense_out else merged(present_a, present_b)
    return {"adds": int(added.sum()), "stream_in": int(present_a.sum() + present_b.sum()),
            "stream_out": int(sent.sum())}


def logic_cost(lanes: int, positions: int, in_bits: list[int], out_bits: int, shift: int) -> tuple[int, int]:
    """LUT4s and flip-flops per the unit's logic (its skip FIFO aside): per lane the merge of `positions`
    positions, two rescaling products (DSPs), their sum, the rounding shift and the clamp."""
    total = max(in_bits) + MULTIPLIER_BITS + 4
    position = index_bits(positions)
    return (lanes * (3 * total + 3 * out_bits + 2 * position + 8 + shift // 3),
            lanes * (out_bits + position + 4))
