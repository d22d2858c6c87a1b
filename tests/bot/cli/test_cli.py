"""The ``signoff`` command end to end on a temporary database."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from engine import open_store

ROOT = Path(__file__).resolve().parents[3]
SIGNOFF = Path(sys.executable).with_name("signoff")


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A clean environment naming a fresh database and the test workflows."""
    for name in list(os.environ):
        if name.startswith(("SIGNOFF_", "SLACK_")):
            monkeypatch.delenv(name)
    values = {
        "SIGNOFF_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "SIGNOFF_WORKFLOWS": "tests.bot.web.workflows",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env file is read
    root = logging.getLogger()
    level = root.level
    yield values
    # main() installs a log handler on the (captured, now closed) stderr: take it away.
    for handler in [h for h in root.handlers if h.get_name() == "signoff"]:
        root.removeHandler(handler)
    root.setLevel(level)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)``: exit status, stdout, stderr."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def started_id(out: str) -> str:
    """The run id from ``signoff start`` output."""
    first = out.splitlines()[0]
    assert first.startswith("run "), out
    return first.split()[1]


def test_workflows_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "workflows")
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["WORKFLOW", "VERSION"]
    listed = {line.split()[0] for line in out.splitlines()[1:]}
    assert listed == {"order", "billing", "slow", "signoff_request"}  # the built-in too
    code, out, _ = run(capsys, "workflows", "show", "order")
    assert code == 0 and "Input schema" in out and '"approved"' in out
    code, _, err = run(capsys, "workflows", "show", "nope")
    assert (
        code == 1 and err.strip() == "signoff: workflow 'nope' is not registered with this engine"
    )


def test_start_inspect_resume_and_cancel(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "start", "order", "--input", '{"item": "pen"}', "--as", "carol")
    assert code == 0 and out.splitlines()[0].endswith("started: suspended")
    assert "waiting on 0:approve#0" in out
    run_id = started_id(out)

    code, out, _ = run(capsys, "runs", "--status", "suspended")
    assert code == 0 and run_id in out and "carol" in out

    code, out, _ = run(capsys, "run", run_id)
    assert code == 0
    for heading in ("Steps", "Interrupts", "History", "Answer 0:approve#0"):
        assert heading in out

    code, _, err = run(
        capsys, "resume", run_id, "0:approve#0", "--data", '{"approved": true}', "--as", "carol"
    )
    assert code == 1 and err.count("\n") == 1 and "requester may not respond" in err
    code, _, err = run(
        capsys, "resume", run_id, "0:approve#0", "--data", '{"approved": 3}', "--as", "bob"
    )
    assert code == 1 and "approved:" in err
    code, _, err = run(
        capsys,
        "resume", run_id, "0:approve#0", "--data", '{"approved": true}', "--as", "group:S0OPS",
    )  # fmt: skip
    assert code == 1 and "names a user group" in err  # a group never answers; its members do
    code, out, _ = run(
        capsys, "resume", run_id, "0:approve#0", "--data", '{"approved": true}', "--as", "bob"
    )
    assert code == 0 and "approved by bob" in out and out.rstrip().endswith("is completed")
    code, _, err = run(
        capsys, "resume", run_id, "0:approve#0", "--data", '{"approved": true}', "--as", "alice"
    )
    assert code == 1 and "already approved by bob" in err

    code, out, _ = run(capsys, "run", run_id, "--follow")  # finished: prints and returns
    assert code == 0 and "completed" in out and out.rstrip().endswith(f"run {run_id} is completed")

    code, _, err = run(capsys, "cancel", run_id)
    assert code == 1 and "already completed" in err
    code, out, _ = run(capsys, "start", "order", "--input", '{"item": "cup"}')
    code, out, _ = run(capsys, "cancel", started_id(out), "--reason", "dup")
    assert code == 0 and out.strip().endswith("is cancelled")


def test_cli_leaves_notifications_for_the_server(
    capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    code, _, _ = run(capsys, "start", "order", "--input", '{"item": "pen"}')
    assert code == 0

    async def backlog() -> int:
        store = open_store(env["SIGNOFF_DATABASE_URL"])
        await store.open()
        try:
            return await store.outbox_backlog()
        finally:
            await store.close()

    # The CLI has no Slack notifier: "interrupt.created" must still be there for the
    # server's, not marked delivered by a process that had nobody to deliver it to.
    assert asyncio.run(backlog()) >= 1


def test_errors_are_one_line_with_non_zero_exit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cases = [
        (("start", "order", "--input", "{bad"), "--input is not valid JSON"),
        (("start", "order", "--input", '{"qty": 0}'), "invalid input for workflow 'order'"),
        (("start", "nope"), "workflow 'nope' is not registered"),
        (("start", "order", "--input", "@missing.json"), "cannot read --input"),
        (("run", "nope"), "run 'nope' not found"),
        (("resume", "nope", "x", "--data", "{}", "--as", "a"), "run 'nope' not found"),
    ]
    for argv, expected in cases:
        code, _, err = run(capsys, *argv)
        assert code == 1, argv
        assert err.startswith("signoff: ") and err.count("\n") == 1, err
        assert expected in err, err
    (tmp_path / "in.json").write_text('{"item": "from a file"}')
    code, out, _ = run(capsys, "start", "order", "--input", "@in.json")
    assert code == 0 and "suspended" in out


def test_configuration_errors_name_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNOFF_PORT", "eighty")
    monkeypatch.setenv("SIGNOFF_LOG_LEVEL", "LOUD")
    code, _, err = run(capsys, "runs")
    assert code == 2
    assert "SIGNOFF_PORT: Input should be a valid integer" in err
    assert "SIGNOFF_LOG_LEVEL: must be DEBUG" in err
    assert "eighty" not in err  # values are never echoed: some are secrets
    monkeypatch.delenv("SIGNOFF_PORT")
    monkeypatch.delenv("SIGNOFF_LOG_LEVEL")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-value")
    code, _, err = run(capsys, "runs")
    assert code == 2 and "SLACK_SIGNING_SECRET is not" in err and "xoxb" not in err
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    monkeypatch.setenv("SIGNOFF_WORKFLOWS", "no.such.module")
    code, _, err = run(capsys, "runs")
    assert code == 1 and "no.such.module" in err and err.count("\n") == 1


def test_console_script_follows_a_run_until_it_ends(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "start", "order", "--input", '{"item": "pen"}')
    run_id = started_id(out)
    child_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    follow = subprocess.Popen(
        [str(SIGNOFF), "run", run_id, "--follow"],
        cwd=tmp_path,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        for line in follow.stdout:  # wait until it printed the history so far
            if line.startswith("History"):
                break
        code, _, _ = run(
            capsys,
            "resume",
            run_id,
            "0:approve#0",
            "--data",
            '{"approved": false}',
            "--as",
            "alice",
        )
        assert code == 0
        out, err = follow.communicate(timeout=20)
    finally:
        follow.kill()
    assert follow.returncode == 0, err
    assert "resolved" in out and out.rstrip().endswith(f"run {run_id} is completed")
