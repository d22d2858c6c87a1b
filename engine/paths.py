"""How positions in a workflow graph are named in the store (step records, interrupts).

A path names each level: ``"1:approve"`` is the step ``approve`` at position 1;
``"2:checks/0:lint"`` is branch 0 of the parallel node ``checks``; ``"3:each[4]/notify"``
is item 4 of the foreach node ``each``; ``"0:child/1:ask"`` is step 1 of sub-workflow
``child``. The same functions build paths at run time and index steps at registration.
"""

from __future__ import annotations

import re
from typing import Any

from engine.definition import Branch, Foreach, Parallel, StepDef, Workflow


def in_sequence(prefix: str, index: int) -> str:
    """Path prefix of the node at ``index`` of a sequence."""
    return f"{prefix}{index}:"


def of_step(prefix: str, sd: StepDef[Any, Any]) -> str:
    """Path of a step node."""
    return prefix + sd.name


def of_subworkflow(prefix: str, wf: Workflow) -> str:
    """Prefix for the nodes of a sub-workflow."""
    return f"{prefix}{wf.name}/"


def of_composite(prefix: str, name: str) -> str:
    """Path of a branch / parallel / foreach node (its record key)."""
    return prefix + name


def in_case(path: str, index: int) -> str:
    """Prefix for branch (or parallel branch) ``index`` of a composite at ``path``."""
    return f"{path}/{index}:"


def in_item(path: str, index: int | str) -> str:
    """Prefix for item ``index`` of a foreach at ``path``."""
    return f"{path}[{index}]/"


_ITEM = re.compile(r"\[\d+\]/")


def template(path: str) -> str:
    """The path with foreach item numbers replaced by ``*`` (for step lookup)."""
    return _ITEM.sub("[*]/", path)


def index_steps(wf: Workflow) -> dict[str, StepDef[Any, Any]]:
    """Map every step's path template to its definition."""
    found: dict[str, StepDef[Any, Any]] = {}

    def node(n: Any, prefix: str) -> None:
        if isinstance(n, StepDef):
            found[of_step(prefix, n)] = n
        elif isinstance(n, Workflow):
            sequence(n, of_subworkflow(prefix, n))
        elif isinstance(n, Branch | Parallel):
            path = of_composite(prefix, n.name)
            targets = (
                [c for _, c in n.cases] + ([n.otherwise] if n.otherwise is not None else [])
                if isinstance(n, Branch)
                else n.branches
            )
            for k, t in enumerate(targets):
                node(t, in_case(path, k))
        elif isinstance(n, Foreach):
            node(n.body, in_item(of_composite(prefix, n.name), "*"))

    def sequence(w: Workflow, prefix: str) -> None:
        for i, n in enumerate(w.nodes):
            node(n, in_sequence(prefix, i))

    sequence(wf, "")
    return found
