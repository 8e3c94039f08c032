"""fast_init: the same object as the dataclass's own ``__init__`` builds, still frozen."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from rmas.documents import DocumentQuery, Holder
from rmas.frozen import fast_init
from rmas.hub import CheckResult
from rmas.verdict import Record, SourceAnswer


@dataclasses.dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class Fast:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()


def test_builds_what_the_generated_init_builds() -> None:
    for args, kwargs in [((1,), {}), ((1, "x"), {}), ((1,), {"c": (2,)}), ((), {"a": 3, "b": ""})]:
        fast, plain = Fast(*args, **kwargs), Plain(*args, **kwargs)
        assert dataclasses.astuple(fast) == dataclasses.astuple(plain)
        assert hash(fast) == hash(Fast(*args, **kwargs))
    with pytest.raises(TypeError):
        Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast(1, d=2)  # type: ignore[call-arg]


def test_still_frozen_and_replaceable() -> None:
    f = Fast(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.a = 2  # type: ignore[misc]
    assert dataclasses.replace(f, b="z") == Fast(1, "z")


def test_refuses_what_it_cannot_do() -> None:
    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (NotFrozen, Factory, Post):
        with pytest.raises(TypeError):
            fast_init(cls)


@pytest.mark.parametrize("cls", [CheckResult, SourceAnswer, Record, DocumentQuery, Holder])
def test_the_hot_classes_keep_their_signature(cls: Any) -> None:
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        assert p.default is (inspect.Parameter.empty if f.default is dataclasses.MISSING
                             else f.default)  # fmt: skip
