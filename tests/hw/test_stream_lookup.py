"""StreamLookup on Amaranth's simulator: every transfer comes out once, in order, with the word its index looks
up, whatever the gaps at its input and the back-pressure at its output."""
import numpy as np
import pytest
from amaranth import unsigned
from amaranth.lib import data
from amaranth_streams import run_through

from undense.hw.stream_lookup import StreamLookup


@pytest.mark.parametrize("seed", range(4))
def test_each_transfer_leaves_once_with_its_word(seed):
    rng = np.random.default_rng(seed)
    words = [int(w) for w in rng.integers(0, 1 << 12, size=20)]
    layout = data.StructLayout({"index": unsigned(5), "tag": unsigned(8)})
    lookup = StreamLookup(layout, unsigned(12), words)
    sent = [{"index": int(i), "tag": tag} for tag, i in enumerate(rng.integers(0, len(words), size=60))]
    received = [(payload.event.index, payload.event.tag, payload.found)
                for payload in run_through(lookup, sent, rng, gap=0.5, stall=0.4)]
    assert received == [(t["index"], t["tag"], words[t["index"]]) for t in sent]
