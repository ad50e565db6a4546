"""The collections.Counter attributes of an object, by name: how the stack totals the counters
of connections that end (Stack._forget) and how `ustack stats` finds every counter (control.py).
"""

from __future__ import annotations


import operator
from collections import Counter


def counter_attributes(item: object) -> dict[str, Counter]:
    """The collections.Counter attributes of an object, by name (`drops`, `counters`, ...), kept
    in its __dict__ or in slots. A Connection has slots, and keeps `drops` in the slot `_drops`
    (made at the first drop, behind the `drops` property): a leading underscore is dropped. A
    class may name its Counter slots in COUNTER_SLOTS (Connection does): only those are read."""
    has_dict, names, read_all = _slots_of(type(item))
    found = {name: value for name, value in vars(item).items() if isinstance(value, Counter)} if has_dict else {}
    if names:
        try:
            values = read_all(item)
        except AttributeError:  # a slot never assigned
            values = [getattr(item, name, None) for name in names]
        # Most objects hold no Counter yet (a connection makes `drops` at its first drop): one
        # pass in C says whether any value is one before the loop in Python looks for it. (By
        # exact type: ustack's counters are plain Counters.)
        if Counter in map(type, values):
            for name, value in zip(names, values):
                if type(value) is Counter:
                    found[name.lstrip("_")] = value
    return found


_SLOTS_OF: dict[type, tuple] = {}


def _slots_of(cls: type) -> tuple:
    """Whether instances of `cls` have a __dict__, its slots that may hold a Counter (its
    COUNTER_SLOTS, else every slot of `cls` and its bases), and an attrgetter that reads them in
    one call; worked out once per class: every finished connection is asked (Stack._forget), and
    walking the MRO with one getattr per slot each time cost more than the rest of _forget."""
    found = _SLOTS_OF.get(cls)
    if found is None:
        names = getattr(cls, "COUNTER_SLOTS", None)
        if names is None:
            names = tuple(name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())
                          if name not in ("__weakref__", "__dict__"))
        # attrgetter of one name returns the value itself, not a 1-tuple: read one name alone.
        read_all = operator.attrgetter(*names) if len(names) > 1 else (lambda item: [getattr(item, names[0])])
        # Instances have a __dict__ unless every class of the MRO declares __slots__ without
        # "__dict__" (built-in ones, object among them, add none): what CPython's __dictoffset__
        # says, asked the way PyPy can answer too.
        has_dict = any("__dict__" in vars(klass).get("__slots__", ("__dict__",))
                       for klass in cls.__mro__ if klass.__module__ != "builtins")
        found = _SLOTS_OF[cls] = (has_dict, names, read_all)
    return found
