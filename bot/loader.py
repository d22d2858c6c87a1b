"""Load the workflows named in ``SIGNOFF_WORKFLOWS`` and check Slack can ask their questions.

Each entry is a module path (``myapp.workflows``: every module-level ``Workflow``, or the
module's ``WORKFLOWS`` list if it defines one) or ``module:attribute`` (one ``Workflow`` or
a list of them). The built-in request workflow (``bot.requests.workflow``) is always
added, so every engine the service or the CLI opens can run, show and answer requests.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from typing import Any

from bot.errors import UnsupportedResumeModel
from bot.slack.blocks.forms import check_renderable
from engine import DefinitionError, StepDef, Workflow

__all__ = ["check_slack_renderable", "load_workflows"]


def load_workflows(paths: Iterable[str], *, builtins: bool = True) -> list[Workflow]:
    """Import each path and collect its workflows, in order, without duplicates.

    Args:
        paths: ``SIGNOFF_WORKFLOWS`` entries.
        builtins: also return Signoff's own workflows (the request workflow), last.

    Raises:
        ImportError: if a module cannot be imported (the message names the entry).
        ValueError: if an entry names no workflows.
    """
    found: dict[int, Workflow] = {}
    for path in paths:
        for wf in _from_entry(path.strip()):
            found.setdefault(id(wf), wf)
    if builtins:
        # Imported here: the request workflow needs only the engine, but importing it at
        # module level would load bot.requests for every user of this module.
        from bot.requests.workflow import request_workflow

        found.setdefault(id(request_workflow), request_workflow)
    return list(found.values())


def _from_entry(path: str) -> list[Workflow]:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"SIGNOFF_WORKFLOWS entry {path!r}: {exc}") from exc
    if attribute:
        if not hasattr(module, attribute):
            raise ValueError(f"SIGNOFF_WORKFLOWS entry {path!r}: {module_name} has no {attribute}")
        value = getattr(module, attribute)
    else:
        value = getattr(module, "WORKFLOWS", None)
        if value is None:
            value = [v for v in vars(module).values() if isinstance(v, Workflow)]
    if isinstance(value, Workflow):
        workflows = [value]
    elif isinstance(value, Iterable) and not isinstance(value, str):
        workflows = list(value)
    else:
        workflows = []
    bad = [w for w in workflows if not isinstance(w, Workflow)]
    if bad or not workflows:
        raise ValueError(f"SIGNOFF_WORKFLOWS entry {path!r} names no Workflow objects")
    return workflows


def check_slack_renderable(workflow: Workflow) -> None:
    """Refuse a workflow with a step whose resume model Slack cannot ask for.

    Raises:
        DefinitionError: naming the workflow, the step and the field at fault.
    """
    for step in _steps(workflow.nodes):
        if step.resume_model is None:
            continue
        try:
            check_renderable(step.resume_model)
        except UnsupportedResumeModel as exc:
            where = f"workflow {workflow.name!r} step {step.name!r}"
            raise DefinitionError(where, str(exc)) from exc


def _steps(nodes: Iterable[Any]) -> Iterator[StepDef[Any, Any]]:
    # Composite nodes (branch, parallel, foreach) are not public engine types, so they are
    # walked by the attributes that hold their children.
    for node in nodes:
        if isinstance(node, StepDef):
            yield node
        elif isinstance(node, Workflow):
            yield from _steps(node.nodes)
        else:
            children: list[Any] = [child for _, child in getattr(node, "cases", [])]
            children += [getattr(node, "otherwise", None), getattr(node, "body", None)]
            children += list(getattr(node, "branches", []))
            yield from _steps(c for c in children if c is not None)
