"""A cheaper ``__init__`` for the frozen, slotted dataclasses built once per document.

A frozen dataclass's generated ``__init__`` sets each field with ``object.__setattr__`` (about
0.13 µs a field: 1.7 µs for a 12-field result), since the class's own ``__setattr__`` refuses
every assignment. :func:`fast_init` replaces it with one that lets the interpreter store the slots
directly: the new instance is handed for the length of ``__init__`` to a *builder*, a class with
the very same slots and no ``__setattr__`` of its own, whose plain attribute stores are the
interpreter's fastest (a slot store specialised in place, no call); then its class is set back.
What leaves ``__init__`` is an instance of the frozen class, with the same parameters and
defaults as the generated ``__init__`` set, and assignment still raises FrozenInstanceError.
A 12-field result: 0.90 → 0.49 µs (the builder) against 0.90 for setting the slots through their
descriptors, and 1.7 for the generated ``__init__`` (issue 20, docs/benchmarks.md). An instance of
a subclass (whose layout may differ) is built through the slots' descriptors instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give ``cls`` (a frozen, slotted dataclass without ``__post_init__`` or default factories)
    an ``__init__`` that sets its slots directly. Apply it above ``@dataclass``."""
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    if not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: fast_init is for frozen, slotted dataclasses")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: fast_init does not run __post_init__")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    for f in fields:
        if not f.init or f.default_factory is not dataclasses.MISSING or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: fast_init needs plain init fields")
    names = [f.name for f in fields]
    reserved = {"self", "_cls", "_builder", "_set_class", "_type"}
    for n in names:
        if n in reserved or n.startswith("_set_"):
            raise TypeError(f"{cls.__name__}.{n}: a name fast_init's __init__ uses itself")
    # The builder: the same base and the same slots, so the same layout (``__class__`` may be
    # set between the two; Python checks the layouts match and refuses otherwise, seen below).
    slots = cls.__dict__["__slots__"]
    builder = type(f"_{cls.__name__}Builder", cls.__bases__, {"__slots__": slots})
    set_class = object.__dict__["__class__"].__set__
    namespace: dict[str, Any] = {f"_set_{n}": getattr(cls, n).__set__ for n in names}
    # Under names no field may take (refused above; DocumentQuery has a field called ``type``).
    namespace.update(_cls=cls, _builder=builder, _set_class=set_class, _type=type)
    slow = "\n".join(f"        _set_{n}(self, {n})" for n in names) or "        pass"
    fast = "\n".join(f"    self.{n} = {n}" for n in names)
    source = (
        f"def __init__(self, {', '.join(names)}):\n"
        "    if _type(self) is not _cls:  # a subclass: its own layout, set through descriptors\n"
        f"{slow}\n"
        "        return\n"
        "    _set_class(self, _builder)\n"
        f"{fast}\n"
        "    self.__class__ = _cls\n"
    )
    probe = object.__new__(cls)  # fails here, at import, if the layouts do not match
    set_class(probe, builder)
    set_class(probe, cls)
    exec(source, namespace)
    init = namespace["__init__"]
    generated = cls.__init__
    init.__defaults__ = generated.__defaults__
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = generated.__doc__
    init.__annotations__ = generated.__annotations__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
