"""The pairing stage of a convolution's lane on Amaranth's simulator: every event comes out once and in order, two
of a channel and row together exactly where the golden executor's count (conv_unit.lane_seconds) says, under
input gaps and output stalls, in both orders a map travels in (channel by channel, or row by row)."""
import numpy as np
import pytest
from amaranth import signed, unsigned
from amaranth.lib import data
from amaranth_streams import run_through

from undense.hw.conv_unit import lane_seconds
from undense.hw.event_pairs import EventPairs

CHANNELS, HEIGHT, WIDTH = 3, 4, 5
ORIGIN = data.StructLayout({"y": unsigned(3), "x": unsigned(3)})
IN = data.StructLayout({"index": unsigned(2), "value": signed(4), "last": 1, "origin": ORIGIN})
OUT = data.StructLayout({**{name: field.shape for name, field in IN},
                         "first": data.StructLayout({"value": signed(4), "x": unsigned(3)}), "paired": 1})


def lane_events(rng, images: int, order: str):
    """Each position's channel, row and column in arrival order, and the images' events over them: present or
    not, some values zero, and the last position always sent (an image's end)."""
    c, y, x = np.meshgrid(range(CHANNELS), range(HEIGHT), range(WIDTH), indexing="ij")
    if order == "rows":
        c, y, x = (axis.transpose(1, 0, 2) for axis in (c, y, x))
    c, y, x = (axis.ravel() for axis in (c, y, x))
    present = rng.random((images, len(c))) < 0.6
    present[:, -1] = True
    values = np.where(rng.random(present.shape) < 0.2, 0, rng.integers(-8, 8, present.shape))
    return c, y, x, present, values


@pytest.mark.parametrize("order", ["channels", "rows"])
@pytest.mark.parametrize("gap,stall,seed", [(0.0, 0.0, 0), (0.4, 0.0, 1), (0.0, 0.6, 2), (0.5, 0.5, 3)])
def test_pairs_are_the_golden_count_and_every_event_comes_out_in_order(order, gap, stall, seed):
    rng = np.random.default_rng(seed)
    c, y, x, present, values = lane_events(rng, 6, order)
    images, positions = np.nonzero(present)
    last = np.r_[images[1:] != images[:-1], True]
    sent = [{"index": int(c[p]), "value": int(values[i, p]), "last": bool(end),
             "origin": {"y": int(y[p]), "x": int(x[p])}} for i, p, end in zip(images, positions, last, strict=True)]
    received = run_through(EventPairs(IN, OUT), sent, rng, gap, stall,
                           done=lambda out: sum(2 if pair.paired else 1 for pair in out) == len(sent))

    out = []  # the events again, each as (kind, index, value, y, x, last)
    for pair in received:
        if pair.paired:  # the first of a pair is never its image's last
            out.append(("first", int(pair.index), int(pair.first.value), int(pair.origin.y), int(pair.first.x),
                        False))
        out.append(("second" if pair.paired else "alone", int(pair.index), int(pair.value), int(pair.origin.y),
                    int(pair.origin.x), bool(pair.last)))
    assert [event[1:] for event in out] == [(e["index"], e["value"], e["origin"]["y"], e["origin"]["x"], e["last"])
                                            for e in sent]
    seconds = lane_seconds(present, values, c, y)
    assert [kind == "second" for kind, *_ in out] == list(seconds[images, positions])
    assert seconds.any() and not seconds.all()
