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

    @dataclasses.dataclass(frozen=True, slots=True)
    class Clash:
        _cls: int  # a name the generated __init__ uses for the class

    for cls in (NotFrozen, Factory, Post, Clash):
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


def test_what_leaves_init_is_the_frozen_class_itself() -> None:
    """The builder class is lent to the instance during __init__ only."""
    f = Fast(1, "x", (2,))
    assert type(f) is Fast and f.__class__ is Fast
    assert isinstance(f, Fast)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.b = "y"  # type: ignore[misc]
    assert (f.a, f.b, f.c) == (1, "x", (2,))
    for cls in (CheckResult, SourceAnswer, Record, DocumentQuery, Holder):
        assert "Builder" not in type(dataclasses.replace(_sample(cls))).__name__


def test_a_subclass_is_built_through_the_descriptors() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Sub(Fast):
        d: int = 4

    s = Sub(1, "x")
    assert type(s) is Sub and (s.a, s.b, s.c, s.d) == (1, "x", (), 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.a = 2  # type: ignore[misc]

    class Bare(Fast):  # no slots of its own: the same __init__, on a layout with a __dict__
        pass

    b = Bare(5)
    assert type(b) is Bare and (b.a, b.b) == (5, "b")


def _sample(cls: Any) -> Any:
    """An instance of one of the hot classes, with its required fields filled."""
    from rmas.verdict import Directive, HolderMatch, Outcome, RecordStatus, Verdict

    required = {
        CheckResult: ("id", "ref", Verdict.CLEAR, Directive.OK_TO_BOARD),
        Record: (RecordStatus.LOST, HolderMatch.NOT_CHECKED),
        DocumentQuery: ("NZL", "X1"),
        Holder: (),
    }
    if cls is SourceAnswer:
        return SourceAnswer("p", Outcome.ANSWERED, True, True, 1.0, _sample(Record))
    return cls(*required[cls])
