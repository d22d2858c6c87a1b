"""Static compatibility of types between connected nodes, checked at registration."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel


def _name(t: Any) -> str:
    return getattr(t, "__name__", None) or repr(t)


def fits(src: Any, dst: Any) -> str | None:
    """Return None when a value of type ``src`` can be given where ``dst`` is expected.

    Otherwise return a sentence saying why not. Models fit when ``src`` is ``dst``
    (or a subclass), or when every required field of ``dst`` exists in ``src`` with a
    fitting type; lists fit when their items fit. ``Any`` fits everything.
    """
    if src is dst or dst is Any or src is Any:
        return None
    if isinstance(src, type) and isinstance(dst, type):
        if issubclass(src, dst):
            return None
        if issubclass(src, BaseModel) and issubclass(dst, BaseModel):
            return _model_fits(src, dst)
        return f"{_name(src)} is not {_name(dst)}"
    return _generic_fits(src, dst)


_UNIONS = (typing.Union, types.UnionType)


def _generic_fits(src: Any, dst: Any) -> str | None:
    """``fits`` for unions, lists and Annotated."""
    s_origin, d_origin = typing.get_origin(src), typing.get_origin(dst)
    if d_origin in _UNIONS:
        if any(fits(src, option) is None for option in typing.get_args(dst)):
            return None
        return f"{_name(src)} is none of {_name(dst)}"
    if s_origin in _UNIONS:
        problems = (fits(option, dst) for option in typing.get_args(src))
        return next((p for p in problems if p), None)
    if s_origin is list and d_origin is list:
        s_args, d_args = typing.get_args(src), typing.get_args(dst)
        if not s_args or not d_args:
            return None
        problem = fits(s_args[0], d_args[0])
        return f"list items: {problem}" if problem else None
    if d_origin is typing.Annotated:
        return fits(src, typing.get_args(dst)[0])
    if s_origin is typing.Annotated:
        return fits(typing.get_args(src)[0], dst)
    if src == dst:
        return None
    return f"{_name(src)} is not {_name(dst)}"


def _model_fits(src: type[BaseModel], dst: type[BaseModel]) -> str | None:
    s_fields = src.model_fields
    for fname, finfo in dst.model_fields.items():
        if fname not in s_fields:
            if finfo.is_required():
                return f"{_name(dst)} needs field {fname!r}, which {_name(src)} does not have"
            continue
        problem = fits(s_fields[fname].annotation, finfo.annotation)
        if problem:
            return f"field {fname!r}: {problem}"
    return None
