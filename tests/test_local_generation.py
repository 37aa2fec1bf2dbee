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


def test_each_answer_is_handed_over_when_it_is_done(embedded_generator):
    """``on_row`` gets each completion as its row finishes, before the longer rows of its batch end
    (evaluation stores answers that way); finished rows leave the batch and the rest decode on."""
    gen = embedded_generator
    events, steps = [], []
    prompts = PROMPTS + [[{"role": "user", "content": "Write a long story about a call center."}]]
    out = gen.generate(prompts, max_new_tokens=40, batch_size=4, on_row=lambda i, c: events.append((i, c, len(steps))),
                       progress=lambda e: steps.append(e))
    assert sorted(i for i, _, _ in events) == [0, 1, 2, 3]
    assert all(out[i] is c for i, c, _ in events)  # the same completions that come back
    # a row is handed over at the step it ends, so in the order of its length
    assert [c.completion_tokens for _, c, _ in events] == sorted(c.completion_tokens for c in out)
    # a row's time is its share of the batch's: every step is split over the rows still writing
    shares = [c.seconds for _, c, _ in events]
    assert shares == sorted(shares) and shares[0] > 0
    first, last = events[0], events[-1]
    assert first[1].completion_tokens < last[1].completion_tokens and first[2] < last[2]
    assert last[1].completion_tokens == 40 and last[1].finish_reason == "length"
    assert steps[-1]["done"] == 4 and steps[-1]["of"] == 4 and steps[-1]["step"] == len(steps)
    # each answer is the one it gets alone (finished rows leaving the cache change nothing)
    assert [c.text for c in out] == [gen.generate([p], max_new_tokens=40)[0].text for p in prompts]
