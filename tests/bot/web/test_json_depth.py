"""bot.web.problems.json_depth_ok: how deep lists and objects nest, against a reference."""

from __future__ import annotations

import json
import random
from typing import Any

from bot.web.problems import MAX_JSON_DEPTH, json_depth_ok


def depth(value: Any) -> int:
    """Levels of lists and objects in ``value`` (0 for a scalar), recursively."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def random_json(rng: random.Random, budget: int) -> Any:
    roll = rng.random()
    if budget <= 0 or roll < 0.3:
        return rng.choice([None, True, 1, 2.5, "s", ""])
    if roll < 0.65:
        return [random_json(rng, budget - 1) for _ in range(rng.randrange(0, 4))]
    return {f"k{n}": random_json(rng, budget - 1) for n in range(rng.randrange(0, 4))}


def test_agrees_with_a_recursive_reference() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        value = random_json(rng, rng.randrange(0, 12))
        for limit in range(0, 10):
            assert json_depth_ok(value, limit) == (depth(value) <= limit), (value, limit)


def test_the_limit_is_inclusive_and_scalars_have_no_depth() -> None:
    nested: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH):
        nested = [nested]
    assert json_depth_ok(nested)
    assert not json_depth_ok([nested])
    assert not json_depth_ok({"a": [1, {"b": nested}]}, MAX_JSON_DEPTH + 2)
    assert json_depth_ok("scalar", 0)
    assert json_depth_ok(json.loads('{"a": [], "b": {}}'), 2)
    assert not json_depth_ok(json.loads('{"a": [], "b": {}}'), 1)


def test_the_text_only_skips_the_walk_when_it_cannot_nest_deeper() -> None:
    rng = random.Random(12)
    for _ in range(2000):
        value = random_json(rng, rng.randrange(0, 12))
        text = json.dumps(value)
        for limit in range(0, 10):
            expected = depth(value) <= limit
            assert json_depth_ok(value, limit, text=text) == expected, (text, limit)
            assert json_depth_ok(value, limit, text=text.encode()) == expected, (text, limit)
    # Brackets in strings count, so such a text is walked: still shallow, still accepted.
    flat = {"note": "[{" * 100}
    assert json_depth_ok(flat, 1, text=json.dumps(flat))
    # A text of few brackets is believed: it is the text the value was parsed from.
    assert json_depth_ok([[["x"]]], 3, text="[[[1]]]")
