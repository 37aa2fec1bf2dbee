"""Local batched generation on the embedded model: batching must not change greedy output."""

import pytest

pytestmark = pytest.mark.slow

PROMPTS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Name one thing a call-center agent should say when putting a customer on hold."}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Colour of the sky?"}],
]


def test_batched_greedy_equals_sequential(embedded_generator):
    gen = embedded_generator
    sequential = [gen.generate([p], max_new_tokens=16)[0] for p in PROMPTS]
    batched = gen.generate(PROMPTS, max_new_tokens=16, batch_size=3)
    assert [c.text for c in batched] == [c.text for c in sequential]
    for c in batched:
        assert c.finish_reason in ("stop", "length") and 0 < c.completion_tokens <= 16
        assert "<|im_end|>" not in c.text


def test_stream_matches_generate(embedded_generator):
    text = "".join(embedded_generator.stream(PROMPTS[0], max_new_tokens=16))
    assert text == embedded_generator.generate([PROMPTS[0]], max_new_tokens=16)[0].text


def test_stream_stops_when_asked(embedded_generator):
    pieces = []
    for piece in embedded_generator.stream(PROMPTS[1], max_new_tokens=40, should_stop=lambda: len(pieces) >= 2):
        pieces.append(piece)
    full = embedded_generator.generate([PROMPTS[1]], max_new_tokens=40)[0]
    assert full.completion_tokens > 6
    assert embedded_generator.count_tokens("".join(pieces)) <= 4  # stopped within a token or two


def test_stop_strings_and_sampling_seed(embedded_generator):
    gen = embedded_generator
    out = gen.generate([PROMPTS[1]], max_new_tokens=24, stop=[" "])[0]
    assert " " not in out.text and out.finish_reason == "stop"
    a = gen.generate([PROMPTS[1]], max_new_tokens=16, temperature=1.0, seed=7)[0].text
    b = gen.generate([PROMPTS[1]], max_new_tokens=16, temperature=1.0, seed=7)[0].text
    assert a == b  # the same seed gives the same sample
