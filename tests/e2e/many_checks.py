"""Exactly-once checks for the many-instances test, with the precise at-least-once bound.

Each function returns a list of problems (empty: all good), so one failing test reports
every violation at once instead of the first.

The bound for work cut off by ``kill -9``: a step, a Slack post, or a thread reply may
happen a second time only if its first attempt was made by the killed instance (which
died before recording it) and the second by a survivor; everything else happens once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from bot.slack.refs import Ref
from engine import EventType, RunDetail
from tests.fakes.slack_api import Call

STEPS = ("prepare", "approve", "act")


@dataclass(frozen=True)
class StepLine:
    """One line of the step log: a step of a run entering or finishing, in a process."""

    step: str
    phase: str
    run_id: str
    pid: int


def read_step_log(path: Path) -> list[StepLine]:
    """Every line of the step log, in the order the processes wrote them."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        step, phase, run_id, pid = raw.split()
        lines.append(StepLine(step, phase, run_id, int(pid)))
    return lines


def step_problems(
    lines: Iterable[StepLine], run_ids: Iterable[str], victim_pid: int, held_runs: Collection[str]
) -> tuple[list[str], int]:
    """Check that each step of each run ran once, or twice only if cut off by the kill.

    Returns the problems and how many steps ran a second time.
    """
    enters: dict[tuple[str, str], list[int]] = defaultdict(list)
    for line in lines:
        if line.phase == "enter":
            enters[line.run_id, line.step].append(line.pid)
    problems: list[str] = []
    reruns_per_run: dict[str, int] = defaultdict(int)
    for run_id in run_ids:
        for step in STEPS:
            pids = enters.get((run_id, step), [])
            if len(pids) == 1:
                continue
            cut_off = (
                len(pids) == 2
                and pids[0] == victim_pid
                and pids[1] != victim_pid
                and run_id in held_runs
            )
            if cut_off:
                reruns_per_run[run_id] += 1
            else:
                problems.append(f"{step} of {run_id} ran in processes {pids}")
    for run_id, n in reruns_per_run.items():
        if n > 1:  # a driver runs one step at a time: only that one can have been cut off
            problems.append(f"{n} steps of {run_id} ran twice")
    return problems, sum(reruns_per_run.values())


def once_or_cut_off(calls: list[Call], victim_token: str) -> bool:
    """One call, or two where the killed instance made the first and a survivor the second."""
    if len(calls) == 1:
        return True
    return len(calls) == 2 and calls[0].token == victim_token and calls[1].token != victim_token


def history_problems(detail: RunDetail, *, expired: bool) -> list[str]:
    """One response and one resolution per interrupt (an expiry: one reminder, no answer)."""
    problems = []
    for interrupt in detail.interrupts:

        def count(event_type: str, iid: str = interrupt.id) -> int:
            return sum(
                1
                for e in detail.events
                if e.type == event_type and e.data.get("interrupt_id") == iid
            )

        wanted = {
            EventType.RESPONSE_RECORDED: 0 if expired else 1,
            EventType.RESOLVED: 1,
            EventType.EXPIRED: 1 if expired else 0,
            EventType.REMINDED: 1 if expired else 0,
        }
        got = {t: count(t) for t in wanted}
        if got != wanted:
            t0 = detail.events[0].at.timestamp()
            trail = [(str(e.type), round(e.at.timestamp() - t0, 2)) for e in detail.events]
            problems.append(f"{detail.run.id}/{interrupt.id}: {got}, wanted {wanted}: {trail}")
    return problems


def slack_problems(
    posts: list[Call],
    replies: list[Call],
    ref_of: Callable[[Call], Ref],
    expected: dict[Ref, str],
    reminded: Collection[Ref],
    victim_token: str,
) -> tuple[list[str], int]:
    """Each request posted once and each thread reply made once, within the bound.

    ``expected`` maps every interrupt to the ts its refs (in the database) point at:
    that must be the last post, the one made after any cut-off attempt. Every message
    gets its run's outcome in its thread, and those in ``reminded`` one reminder too.
    Returns the problems and how many calls were made a second time.
    """
    by_ref: dict[Ref, list[Call]] = defaultdict(list)
    for call in posts:
        by_ref[ref_of(call)].append(call)
    problems = []
    if set(by_ref) != set(expected):
        problems.append(f"posted for {len(by_ref)} interrupts, expected {len(expected)}")
    ref_at_ts = {}
    for ref, calls in by_ref.items():
        for call in calls:
            ref_at_ts[call.response["ts"]] = ref
        if not once_or_cut_off(calls, victim_token):
            problems.append(f"{ref} posted {len(calls)} times by {[c.token for c in calls]}")
        if ref in expected and calls[-1].response["ts"] != expected[ref]:
            problems.append(f"{ref}: the stored ref is not the last post")
    threads: dict[tuple[str, str], list[Call]] = defaultdict(list)
    for call in replies:
        kind = "reminder" if "Reminder" in str(call.args.get("text")) else "finished"
        threads[str(call.args["thread_ts"]), kind].append(call)
    for (ts, kind), calls in threads.items():
        if not once_or_cut_off(calls, victim_token):
            problems.append(f"{kind} reply to {ref_at_ts.get(ts)} made {len(calls)} times")
    for ref, ts in expected.items():
        if not threads.get((ts, "finished")):
            problems.append(f"{ref}: no outcome in the thread")
        if bool(threads.get((ts, "reminder"))) != (ref in reminded):
            problems.append(f"{ref}: reminder expected {ref in reminded}")
    groups = [*by_ref.values(), *threads.values()]
    return problems, sum(len(calls) - 1 for calls in groups if len(calls) > 1)
