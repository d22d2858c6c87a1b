"""Compare a benchmark between a base commit and the working tree, in alternated pairs.

On a shared 2-core machine the same commit's figures drift by 5-25% within an hour, so a
single before/after run cannot resolve a 5% change. This runs one benchmark script
``--pairs`` times on each side, alternating base and head so that both see the same
drift, and prints the median of every numeric field of every JSON line the script
prints, with each side's values. The base is checked out into a temporary git worktree
(removed afterwards) and each side runs with ``PYTHONPATH`` set to its own tree, so the
script, the engine and any ``python -m bot.cli serve`` it starts all come from that
side. Usage::

    .venv/bin/python bench/ab.py --base 1c56312 --pairs 6 -- bench/engine.py
    .venv/bin/python bench/ab.py --base HEAD --pairs 4 --fields ack_p99_ms,e2e_p99_ms \\
        -- bench/slack.py --levels 200,200,200 --warmup 20

Prints one JSON line per (output line, field): ``line`` (the index of the script's JSON
line, e.g. one per ``--levels`` entry), ``field``, ``base`` and ``head`` (the values in
run order), ``base_median``, ``head_median`` and ``change_pct``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TypeGuard

ROOT = Path(__file__).resolve().parent.parent

Lines = list[dict[str, object]]


def run_side(tree: Path, command: list[str]) -> Lines:
    """Run ``command`` (a script and its arguments) in ``tree``; its JSON lines."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, *command], cwd=tree, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {tree}:\n{done.stderr[-2000:]}")
    found: Lines = []
    for text in done.stdout.splitlines():
        if text.startswith("{"):
            found.append(json.loads(text))
    return found


def numeric(value: object) -> TypeGuard[int | float]:
    """Whether a JSON value is a number to compare (booleans are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def values(runs: list[Lines], index: int, name: str) -> list[float]:
    """Field ``name`` of JSON line ``index`` in each run that printed it as a number."""
    found = []
    for run in runs:
        value = run[index].get(name)
        if numeric(value):
            found.append(float(value))
    return found


def compare(
    base: list[Lines], head: list[Lines], fields: set[str] | None
) -> list[dict[str, object]]:
    """Per output line and numeric field: both sides' values and medians."""
    rows: list[dict[str, object]] = []
    for index in range(min(len(run) for run in base + head)):
        names = [k for k, v in head[0][index].items() if numeric(v)]
        for name in names:
            if fields is not None and name not in fields:
                continue
            b, h = values(base, index, name), values(head, index, name)
            if not b or not h:
                continue
            bm, hm = statistics.median(b), statistics.median(h)
            rows.append(
                {
                    "line": index,
                    "field": name,
                    "base": b,
                    "head": h,
                    "base_median": round(bm, 3),
                    "head_median": round(hm, 3),
                    "change_pct": round((hm - bm) / bm * 100, 1) if bm else None,
                }
            )
    return rows


def main() -> None:
    """Parse arguments, run the pairs, print the comparison."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--fields", default=None, help="comma-separated fields to print")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- script [args]")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the benchmark to run after --, e.g. -- bench/engine.py")
    fields = set(args.fields.split(",")) if args.fields else None
    with tempfile.TemporaryDirectory(prefix="signoff-ab-") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), args.base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            base: list[Lines] = []
            head: list[Lines] = []
            for pair in range(args.pairs):
                base.append(run_side(tree, command))
                head.append(run_side(ROOT, command))
                print(f"pair {pair + 1}/{args.pairs} done", file=sys.stderr, flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
            )
    for row in compare(base, head, fields):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
