"""Typed configs: unknown keys, wrong types and missing keys fail with helpful messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memzoo.config import ConfigError, config_to_dict, make_config


@dataclass(frozen=True)
class Example:
    hard_dim: int
    width: float = 1.0
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    triple: tuple[float, float, float] = (1.0, 2.0, 3.0)
    note: str | None = None


def test_unknown_key_is_named_with_accepted_keys():
    with pytest.raises(ConfigError, match=r"Unknown transfer 'x' config key\(s\) \['widht'\]. Accepted keys: \["):
        make_config(Example, {"hard_dim": 3, "widht": 2.0}, owner="transfer 'x'")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("hard_dim", "3", "must be an integer"),
        ("hard_dim", 2.5, "must be an integer"),
        ("width", "wide", "must be a number"),
        ("flag", 1, "must be true or false"),
        ("mode", "c", "must be one of"),
        ("sizes", 3, "must be a sequence"),
        ("triple", [1.0, 2.0], "must have 3 entries"),
        ("note", 5, "must be of type"),
    ],
)
def test_wrong_types(key, value, message):
    values = {"hard_dim": 3, key: value}
    with pytest.raises(ConfigError, match=message):
        make_config(Example, values)


def test_missing_required_key():
    with pytest.raises(ConfigError, match=r"missing required key\(s\) \['hard_dim'\]"):
        make_config(Example, {})


@given(
    hard_dim=st.integers(1, 100),
    width=st.floats(0.01, 100) | st.integers(0, 100),
    sizes=st.lists(st.integers(1, 512), max_size=5),
    mode=st.sampled_from(["a", "b"]),
)
def test_round_trip_through_json_dict(hard_dim, width, sizes, mode):
    cfg = make_config(Example, {"hard_dim": hard_dim, "width": width, "sizes": sizes, "mode": mode})
    assert isinstance(cfg.width, float) and cfg.sizes == tuple(sizes)
    assert make_config(Example, config_to_dict(cfg)) == cfg
