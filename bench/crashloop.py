"""Crash loop: a real ``signoff serve`` SIGKILLed ``--kills`` times while it is used.

The loop of ``tests/e2e/test_crash_loop.py`` (``tests.support.crashloop``), run longer:
signed Approve clicks, signed webhooks and REST API resumes sent while the service
(``python -m bot``, SQLite file in a temporary directory, the FakeSlack of ``tests.fakes``
in this process, everything on 127.0.0.1) is killed at random moments, often the moment a
click's 200 has been read, and restarted. A final process settles everything, then one
JSON line is printed::

    python bench/crashloop.py --kills 110 [--seed 1] [--runs-per-round 2]

``lost``: acknowledged answers not recorded; ``duplicates``: extra live request messages
or messages left with buttons; ``duplicate_replies``; ``runs_lost``/``duplicate_runs``:
acknowledged webhooks without exactly one run. The exit status is 1 if any is non-zero.
"""

from __future__ import annotations

import os
import sys

# Run as a script, bench/ would be first on sys.path, where engine.py (the engine bench)
# would shadow the engine package.
_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    sys.path.pop(0)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.support.crashloop import CrashLoop  # noqa: E402

SECRET = "crashloop-signing-secret-0123456789"
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


async def main(kills: int, seed: int, runs_per_round: int) -> int:
    """Run the loop; print the JSON line; 0 if every guarantee held."""
    for name in _PROXIES:  # slack-sdk ignores NO_PROXY: never send 127.0.0.1 to a proxy
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="signoff-crashloop-") as work:
        async with FakeSlack() as fake:
            loop = CrashLoop(fake, Path(work), secret=SECRET, seed=seed, new_runs=runs_per_round)
            report = await loop.run(kills)
    print(json.dumps(report.summary()), flush=True)
    for problem in report.problems[:50]:
        print(problem, file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=110, help="rounds ended by SIGKILL")
    parser.add_argument("--seed", type=int, default=1, help="kill moments and choices")
    parser.add_argument("--runs-per-round", type=int, default=2, help="webhook runs per round")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.kills, args.seed, args.runs_per_round)))
