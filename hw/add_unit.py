"""The event-driven Add unit (hw/elementwise.py) described in plain Python: cycles and events per image.

Each lane merges the positions its two inputs sent, one a cycle; the unit stores nothing but the FIFO on its
shorter input (compiler/resources.skip_fifos).
"""
import numpy as np

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
