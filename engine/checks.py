"""Registration checks of a workflow graph: run by ``Engine.register`` on every workflow.

A workflow is refused (``DefinitionError``, naming where and what) when it has no
steps, names an unknown step or sub-workflow, includes itself (a sub-workflow cycle),
uses one name for two nodes, has a branch condition that is not callable, loops
(``foreach``) over something that is not a list, or connects a node's output to an
input it does not fit (``engine.typecheck.fits``). Named sub-workflows are resolved
here, and a parallel node's output model is built from its branches.

What each step declares (async, annotated, its models) is checked earlier, when
``@step`` decorates it (``engine.typecheck.read_signature``).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, create_model

from engine import paths
from engine.definition import Branch, Foreach, Parallel, StepDef, Workflow, node_name
from engine.errors import DefinitionError
from engine.models import ItemResult
from engine.typecheck import fits

Resolve = Callable[[str], Workflow]


@dataclass
class _Checker:
    """Validates a workflow graph and resolves named sub-workflows."""

    resolve: Resolve
    stack: list[str] = field(default_factory=list)

    def check(self, wf: Workflow) -> None:
        label = f"{wf.name}@{wf.version}"
        if label in self.stack:
            cycle = " -> ".join([*self.stack, label])
            raise DefinitionError(f"workflow {wf.name!r}", f"sub-workflow cycle: {cycle}")
        self.stack.append(label)
        try:
            where = f"workflow {wf.name!r}"
            if not wf.nodes:
                raise DefinitionError(where, "has no steps")
            wf.nodes = [self.node(where, n) for n in wf.nodes]
            self.unique_names(where, wf.nodes)
            current: list[Any] = [wf.input]
            for node in wf.nodes:
                current = self.flow(where, node, current)
            if wf.output is None:
                infer_output(where, wf, current)
            for t in current:
                self.expect(where, t, wf.output, "the workflow's output")
            check_resume_events(where, wf)
            wf._checked = True
        finally:
            self.stack.pop()

    def node(self, where: str, node: Any) -> Any:
        if isinstance(node, str):
            return self.named(where, node)
        if isinstance(node, StepDef | Workflow):
            if isinstance(node, Workflow):
                self.check(node)
            return node
        if isinstance(node, Branch):
            return self.branch(where, node)
        if isinstance(node, Parallel):
            if not node.branches:
                raise DefinitionError(where, f"parallel {node.name!r} has no branches")
            node.branches = [self.node(where, n) for n in node.branches]
            return node
        if isinstance(node, Foreach):
            if node.concurrency < 1:
                raise DefinitionError(where, f"foreach {node.name!r}: concurrency must be >= 1")
            if node.on_item_error not in ("stop", "collect"):
                raise DefinitionError(
                    where,
                    f"foreach {node.name!r}: on_item_error={node.on_item_error!r} is not "
                    "'stop' or 'collect'",
                )
            if node.batch_size is not None and node.batch_size < 1:
                raise DefinitionError(where, f"foreach {node.name!r}: batch_size must be >= 1")
            node.body = self.node(where, node.body)
            return node
        if callable(node):
            raise DefinitionError(
                where, f"unknown step {getattr(node, '__name__', node)!r}: decorate it with @step"
            )
        raise DefinitionError(where, f"unknown step {node!r}")

    def branch(self, where: str, node: Branch) -> Branch:
        if not node.cases:
            raise DefinitionError(where, f"branch {node.name!r} has no cases")
        node.cases = [(c, self.node(where, n)) for c, n in node.cases]
        if not all(callable(cond) for cond, _ in node.cases):
            raise DefinitionError(where, f"branch {node.name!r}: a condition must be callable")
        if node.otherwise is not None:
            node.otherwise = self.node(where, node.otherwise)
        return node

    def named(self, where: str, ref: str) -> Workflow:
        try:
            return self.resolve(ref)
        except LookupError:
            # Not registered yet: if it is being checked right now, it includes itself.
            name, _, version = ref.partition("@")
            for label in self.stack:
                if label.partition("@")[0] == name and version in ("", label.partition("@")[2]):
                    cycle = " -> ".join([*self.stack, label])
                    raise DefinitionError(where, f"sub-workflow cycle: {cycle}") from None
            raise DefinitionError(where, f"unknown step or workflow {ref!r}") from None

    def unique_names(self, where: str, nodes: Sequence[Any]) -> None:
        seen: set[str] = set()

        def visit(n: Any) -> None:
            if isinstance(n, Workflow):  # a sub-workflow is its own namespace
                names = [node_name(n)]
            elif isinstance(n, StepDef):
                names = [n.name]
            else:
                names = [node_name(n)]
            for nm in names:
                if nm in seen:
                    raise DefinitionError(
                        where,
                        f"duplicate name {nm!r}: every step and node needs its own name "
                        "(use @step(name=...) or name= to tell two uses apart)",
                    )
                seen.add(nm)
            if isinstance(n, Branch):
                for _, c in n.cases:
                    visit(c)
                if n.otherwise is not None:
                    visit(n.otherwise)
            elif isinstance(n, Parallel):
                for b in n.branches:
                    visit(b)
            elif isinstance(n, Foreach):
                visit(n.body)

        for n in nodes:
            visit(n)

    def expect(self, where: str, src: Any, dst: Any, what: str) -> None:
        problem = fits(src, dst)
        if problem:
            raise DefinitionError(where, f"output does not fit {what}: {problem}")

    def flow(self, where: str, node: Any, inputs: list[Any]) -> list[Any]:
        """Check ``inputs`` (possible types) fit ``node``; return its possible outputs."""
        if isinstance(node, StepDef):
            for t in inputs:
                self.expect(where, t, node.input_type, f"the input of step {node.name!r}")
            return [node.output_type]
        if isinstance(node, Workflow):
            for t in inputs:
                self.expect(where, t, node.input, f"the input of sub-workflow {node.name!r}")
            return [node.output]
        if isinstance(node, Branch):
            outs: list[Any] = []
            targets = [n for _, n in node.cases] + (
                [node.otherwise] if node.otherwise is not None else []
            )
            for n in targets:
                outs.extend(self.flow(where, n, inputs))
            if node.otherwise is None:
                outs.extend(inputs)  # nothing matched: the value passes through unchanged
            return outs
        if isinstance(node, Parallel):
            fields: dict[str, Any] = {}
            for b in node.branches:
                bo = self.flow(where, b, inputs)
                fields[node_name(b)] = (bo[0] if len(bo) == 1 else typing.Union[tuple(bo)], ...)  # noqa: UP007
            node.output_model = create_model(f"{node.name}_output", **fields)
            return [node.output_model]
        if isinstance(node, Foreach):
            return self.foreach(where, node, inputs)
        raise DefinitionError(where, f"unknown node {node!r}")  # pragma: no cover

    def foreach(self, where: str, node: Foreach, inputs: list[Any]) -> list[Any]:
        """A foreach's possible outputs: lists of its body's (or of ``ItemResult`` of them)."""
        items: list[Any] = []
        for t in inputs:
            if typing.get_origin(t) is not list:
                raise DefinitionError(
                    where, f"foreach {node.name!r} needs a list input, got {_tname(t)}"
                )
            items.append(typing.get_args(t)[0] if typing.get_args(t) else Any)
        if node.batch_size is not None:  # the body gets lists of items
            items = [list[i] for i in items]  # type: ignore[valid-type]
        outs = self.flow(where, node.body, items)
        if node.on_item_error == "collect":
            return [list[ItemResult[o]] for o in outs]  # type: ignore[valid-type]
        return [list[o] for o in outs]  # type: ignore[valid-type]


def check_resume_events(where: str, wf: Workflow) -> None:
    """Every ``ResumeTo.event(name)`` needs a step of ``wf`` waiting for ``name`` (declared
    ``@step(events={name: Model})``) with a model the asking step's resume model fits."""
    steps = list(paths.index_steps(wf).values())
    for asker in steps:
        name = asker.resume_event
        if name is None:
            continue
        waiters = [s for s in steps if name in s.events]
        if not waiters:
            raise DefinitionError(
                where,
                f"step {asker.name!r} resumes to event {name!r} but no step of the workflow "
                f"waits for it: declare @step(events={{{name!r}: Model}}) on the step that "
                f"calls ctx.wait_for_event({name!r}, Model)",
            )
        for w in waiters:
            problem = fits(asker.resume_model, w.events[name])
            if problem:
                raise DefinitionError(
                    where,
                    f"step {w.name!r} waits for event {name!r} with a model the answers of "
                    f"step {asker.name!r} do not fit: {problem}",
                )


def infer_output(where: str, wf: Workflow, last: list[Any]) -> None:
    """A workflow without ``output=`` outputs what its last node outputs.

    Raises:
        DefinitionError: the last node may output several types (a branch), so the
            workflow's output model must be declared.
    """
    distinct = list(dict.fromkeys(last))
    if len(distinct) != 1:
        kinds = ", ".join(_tname(t) for t in distinct)
        raise DefinitionError(
            where,
            f"output= is required: the last node may output any of {kinds}, so say which "
            "model the run's output is validated against (Workflow(..., output=Model))",
        )
    wf.output = distinct[0]
    wf.output_adapter = TypeAdapter(wf.output)


def _tname(t: Any) -> str:
    return getattr(t, "__name__", None) or repr(t)


def check_workflow(wf: Workflow, resolve: Resolve) -> None:
    """Validate a workflow graph (raises DefinitionError), resolving named sub-workflows."""
    _Checker(resolve).check(wf)
