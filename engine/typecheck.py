"""Types a step declares and whether they connect, checked when steps are defined.

``read_signature`` reads a step function's annotations (input, output, the
``StepContext[Shown, Answer]`` models) when ``@step`` decorates it; ``fits`` says whether
a value of one type can be given where another is expected, which ``engine.checks``
applies to every edge of a workflow graph when it is registered.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from engine.context import StepContext
from engine.errors import DefinitionError


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


def read_signature(
    fn: Callable[..., Any],
) -> tuple[Any, Any, bool, type[BaseModel] | None, type[BaseModel] | None]:
    """Read a step function's input/output types and StepContext[S, R] models.

    Checks that it is an ``async def`` taking its input and optionally a StepContext,
    with the input and the return type annotated (DefinitionError otherwise).

    Returns:
        (input type, output type, whether it takes a context, suspend model, resume model)
    """
    where = f"step {fn.__qualname__}"
    if not inspect.iscoroutinefunction(fn):
        raise DefinitionError(where, "a step must be an `async def` function")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except NameError as exc:
        raise DefinitionError(where, f"cannot resolve a type annotation: {exc}") from exc
    params = list(inspect.signature(fn).parameters.values())
    if not params or len(params) > 2:
        raise DefinitionError(where, "a step takes its input and optionally a StepContext")
    first = params[0]
    if first.name not in hints:
        raise DefinitionError(where, f"annotate the input parameter {first.name!r}")
    if "return" not in hints:
        raise DefinitionError(where, "annotate the return type (the step's output)")
    suspend_model = resume_model = None
    wants_ctx = len(params) == 2
    if wants_ctx:
        ctx_hint = hints.get(params[1].name, StepContext)
        origin = typing.get_origin(ctx_hint) or ctx_hint
        if origin is not StepContext:
            raise DefinitionError(where, "the second parameter must be annotated StepContext")
        args = typing.get_args(ctx_hint)
        if args:
            suspend_model, resume_model = (a if a is not type(None) else None for a in args)
    return hints[first.name], hints["return"], wants_ctx, suspend_model, resume_model


def merge_model(
    where: str, what: str, given: type[BaseModel] | None, annotated: type[BaseModel] | None
) -> type[BaseModel] | None:
    """The suspend/resume model given to ``@step(...)`` or in the StepContext annotation.

    Both may name it, but then the same model; it must be a pydantic model.
    """
    if given is not None and annotated is not None and given is not annotated:
        raise DefinitionError(
            where, f"{what}= says {given.__name__} but the StepContext says {annotated.__name__}"
        )
    model = given or annotated
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise DefinitionError(where, f"the {what} model must be a pydantic BaseModel subclass")
    return model
