"""The set of workflows an engine knows, by name and version."""

from __future__ import annotations

from typing import Any

from engine import paths
from engine.checks import check_workflow
from engine.definition import StepDef, Workflow
from engine.errors import DefinitionError, WorkflowNotRegistered


class Registry:
    """Registered workflows. The newest registered version of a name is its default."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Workflow] = {}
        self._latest: dict[str, Workflow] = {}

    def register(self, wf: Workflow) -> None:
        """Check ``wf`` (raises DefinitionError) and add it."""
        if not isinstance(wf, Workflow):
            raise DefinitionError(repr(wf), "only Workflow objects can be registered")
        existing = self._by_key.get(wf.key)
        if existing is not None and existing is not wf:
            raise DefinitionError(
                f"workflow {wf.name!r}",
                f"version {wf.version!r} is already registered; bump the version for a "
                "changed definition (runs stay pinned to the version they started on)",
            )
        check_workflow(wf, self._resolve)
        self._by_key[wf.key] = wf
        self._latest[wf.name] = wf

    def _resolve(self, ref: str) -> Workflow:
        name, _, version = ref.partition("@")
        found = self._by_key.get((name, version)) if version else self._latest.get(name)
        if found is None:
            raise LookupError(ref)
        return found

    def get(self, name: str, version: str | None = None) -> Workflow:
        """The workflow ``name`` at ``version`` (default: the newest registered)."""
        found = self._by_key.get((name, str(version))) if version else self._latest.get(name)
        if found is None:
            raise WorkflowNotRegistered(name, version)
        return found

    def all(self) -> list[Workflow]:
        """Every registered workflow version."""
        return list(self._by_key.values())


def find_step(wf: Workflow, path: str) -> StepDef[Any, Any]:
    """The step definition recorded at ``path`` (raises LookupError if there is none)."""
    index = _INDEX.get(id(wf))
    if index is None or index[0] is not wf:
        index = _INDEX[id(wf)] = (wf, paths.index_steps(wf))
    return index[1][paths.template(path)]


_INDEX: dict[int, tuple[Workflow, dict[str, StepDef[Any, Any]]]] = {}
