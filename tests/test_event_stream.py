"""AWS event-stream framing as the instrumentation reads it, however the bytes are cut into chunks."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from spendwatch.instrumentation.streams import EventStreamReader
from spendwatch.standin.bedrock import event_message

EVENTS = [
    ({":event-type": "messageStart", ":message-type": "event"}, {"role": "assistant"}),
    ({":event-type": "contentBlockDelta", ":message-type": "event"}, {"delta": {"text": "é" * 40}}),
    ({":event-type": "metadata", ":message-type": "event"}, {"usage": {"inputTokens": 3, "outputTokens": 4}}),
]
FRAMED = b"".join(event_message(headers, json.dumps(payload).encode()) for headers, payload in EVENTS)


@given(st.lists(st.integers(min_value=0, max_value=len(FRAMED)), max_size=12))
def test_any_chunking_gives_the_same_payloads(cuts):
    seen = []
    reader = EventStreamReader(seen.append)
    points = [0, *sorted(cuts), len(FRAMED)]
    for start, end in itertools.pairwise(points):
        reader.feed(FRAMED[start:end])
    reader.close()
    assert seen == [payload for _, payload in EVENTS]


def test_an_exception_message_is_handed_on_by_type():
    seen = []
    reader = EventStreamReader(seen.append)
    headers = {":message-type": "exception", ":exception-type": "throttlingException"}
    reader.feed(event_message(headers, b'{"message": "slow down"}') + FRAMED[:20])
    assert seen == [{"__exception__": "throttlingException"}]


def test_bytes_that_are_not_an_event_stream_are_left_alone():
    seen = []
    reader = EventStreamReader(seen.append)
    reader.feed(b'{"not": "an event stream at all, just JSON"}')
    reader.feed(FRAMED)  # once lost, the reader stops rather than guess
    assert seen == []
