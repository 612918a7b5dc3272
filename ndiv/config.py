"""Remembering how an object was built, so it can be saved as JSON and rebuilt (no pickle)."""
from __future__ import annotations

import functools
import inspect


def record_init_args(cls) -> None:
    """Wrap cls.__init__ so that an instance remembers the arguments it was built with
    (`_init_config`, name -> value; the outermost constructor wins): save() writes them."""
    init = cls.__dict__.get("__init__")
    if init is None or getattr(init, "_records_args", False):
        return
    sig = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "_init_config" not in self.__dict__:
            bound = sig.bind(self, *args, **kwargs)
            config = {}
            for name, value in list(bound.arguments.items())[1:]:
                if sig.parameters[name].kind == inspect.Parameter.VAR_KEYWORD:
                    config.update(value)
                else:
                    config[name] = value
            self.__dict__["_init_config"] = config
        init(self, *args, **kwargs)

    __init__._records_args = True
    cls.__init__ = __init__
