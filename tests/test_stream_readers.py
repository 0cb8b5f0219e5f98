"""The server-sent-events reader gives the same values however the bytes are cut into chunks.

The reader has a fast path for a chunk that is one whole event (how providers send most of a stream) and
a line-by-line path for everything else; both must agree with what the events say, and a JSON value must
read as the standard library reads it.
"""

from __future__ import annotations

import json
import random

import pytest

from spendwatch.instrumentation.streams import NdjsonReader, SseReader, json_value

EVENTS = [
    b'event: message_start\ndata: {"type": "message_start", "message": {"usage": {"input_tokens": 7}}}\n\n',
    b'data: {"id": "c1", "choices": [{"delta": {"content": " h\\u00e9llo"}, "finish_reason": null}]}\n\n',
    b": a comment line, ignored\n\n",
    b'data: {"big": 123456789012345678901234567890, "nan": NaN}\r\n\r\n',
    b'data: {"split":\ndata: "over two data lines"}\n\n',
    b"event: ping\n\n",
    b'data:{"no_space": true}\n\n',
    b"data: not json at all\n\n",
    b'data: {"usage": {"prompt_tokens": 3, "completion_tokens": 5}}\n\n',
    b"data: [DONE]\n\n",
]
EXPECTED = [
    {"type": "message_start", "message": {"usage": {"input_tokens": 7}}},
    {"id": "c1", "choices": [{"delta": {"content": " h\u00e9llo"}, "finish_reason": None}]},
    {"big": 123456789012345678901234567890, "nan": float("nan")},
    {"split": "over two data lines"},
    {"no_space": True},
    {"usage": {"prompt_tokens": 3, "completion_tokens": 5}},
]


def read(reader_class, chunks: list[bytes]) -> list:
    values: list = []
    reader = reader_class(values.append)
    for chunk in chunks:
        reader.feed(chunk)
    reader.close()
    return values


def same(values: list, expected: list) -> bool:
    return json.dumps(values) == json.dumps(expected)  # NaN != NaN, but its JSON text is equal


def test_one_chunk_per_event_takes_the_fast_path_and_reads_every_value():
    assert same(read(SseReader, EVENTS), EXPECTED)


def test_the_whole_stream_in_one_chunk():
    assert same(read(SseReader, [b"".join(EVENTS)]), EXPECTED)


@pytest.mark.parametrize("seed", range(40))
def test_any_cut_of_the_bytes_reads_the_same_values(seed: int):
    data = b"".join(EVENTS)
    cuts = sorted(random.Random(seed).sample(range(1, len(data)), k=random.Random(seed).randint(1, 25)))
    chunks = [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert same(read(SseReader, chunks), EXPECTED)


def test_every_single_cut_point():
    data = b"".join(EVENTS)
    for cut in range(1, len(data)):
        assert same(read(SseReader, [data[:cut], data[cut:]]), EXPECTED), cut


def test_a_stream_cut_short_keeps_the_events_that_ended():
    assert same(read(SseReader, [EVENTS[0], EVENTS[1][:30]]), EXPECTED[:1])


def test_json_values_read_as_the_standard_library_reads_them():
    for text in ('{"a": 1}', " [1, 2.5, null] ", '"\\ud800"', "-Infinity", "1e400", '{"a": 1} x', "", "{"):
        try:
            expected = json.loads(text)
        except ValueError:
            assert json_value(text.encode()) is None, text
        else:
            assert json.dumps(json_value(text.encode())) == json.dumps(expected), text


def test_ndjson_lines_across_chunks():
    data = b'{"a": 1}\n\n{"b": [1,\n'
    assert read(NdjsonReader, [data[:5], data[5:], b'2]}\n{"c": 3}']) == [{"a": 1}, {"c": 3}]
