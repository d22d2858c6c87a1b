"""The commands the docs show, run as shown: the CI jobs of docs/ci.md against a real
server with people clicking in the fake Slack, and the openssl checks of
docs/requests.md against real callbacks and receipts."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.slack import action_ids
from tests.e2e.requests_server import CALLBACK_SECRET, Receiver, RequestsServer, api
from tests.support.polling import eventually
from tests.support.service import ROOT

DOCS = ROOT / "docs"
GITHUB = {
    "github.repository": "acme/billing",
    "github.sha": "0123abcd",
    "github.actor": "dave",
    "github.run_attempt": "1",
}


def _yaml_after(path: Path, heading: str) -> Any:
    text = path.read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    return yaml.safe_load(block)


def _github_script(run_id: str) -> str:
    job = _yaml_after(DOCS / "ci.md", "GitHub Actions")["jobs"]["signoff"]
    (step,) = [s for s in job["steps"] if s.get("name") == "Ask for sign-off"]
    assert set(step["env"]) == {"SIGNOFF_URL", "SIGNOFF_TOKEN"}
    values = {**GITHUB, "github.run_id": run_id}
    # What the runner does before running the script: substitute ${{ expressions }}.
    script: str = re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: values[m.group(1)], step["run"])
    return script


def _gitlab_script() -> str:
    job = _yaml_after(DOCS / "ci.md", "GitLab CI")["signoff"]
    (line,) = [s for s in job["script"] if s.startswith("signoff ask")]
    return str(line)


async def _run_job(
    server: RequestsServer, script: str, env: dict[str, str], title: str, action: str
) -> int:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    seen = {m.ts for m in server.posts()}
    proc = await asyncio.create_subprocess_exec(
        "bash", "-e", "-c", script,
        env={**server.client_env(), **env, "PATH": path},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    message = await eventually(
        lambda: next(
            (m for m in server.posts() if m.ts not in seen and title in str(m.blocks)), None
        ),
        timeout=20,
        what=f"the post of {title!r}",
    )
    assert await server.click(message, action, user="U0ALICE") == 200
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None, (out, err)
    return proc.returncode


async def test_the_github_actions_job_of_the_ci_docs_passes_on_approval_and_fails_on_rejection(
    requests_server: Any,
) -> None:
    server: RequestsServer = await requests_server()
    title = "Deploy acme/billing to production"
    approved = await _run_job(server, _github_script("41"), {}, title, action_ids.APPROVE)
    assert approved == 0
    _, listed = await api("GET", f"{server.url}/api/requests?status=approved")
    (request,) = listed["requests"]
    assert request["title"] == title
    assert request["fields"] == {"commit": "0123abcd", "by": "dave"}
    rejected = await _run_job(server, _github_script("42"), {}, title, action_ids.REJECT)
    assert rejected == 1


async def test_the_gitlab_ci_job_of_the_ci_docs_passes_on_approval_and_fails_on_rejection(
    requests_server: Any,
) -> None:
    server: RequestsServer = await requests_server()
    title = "Deploy acme/billing to production"
    gitlab = {
        "CI_PROJECT_PATH": "acme/billing",
        "CI_COMMIT_SHA": "0123abcd",
        "GITLAB_USER_LOGIN": "dave",
        "CI_PIPELINE_ID": "7",
    }
    script = _gitlab_script()
    ok = await _run_job(server, script, {**gitlab, "CI_JOB_ID": "1"}, title, action_ids.APPROVE)
    assert ok == 0
    no = await _run_job(server, script, {**gitlab, "CI_JOB_ID": "2"}, title, action_ids.REJECT)
    assert no == 1


def _sh_block(marker: str) -> str:
    text = (DOCS / "requests.md").read_text()
    after = text.split(f"<!-- tested: {marker} -->\n", 1)[1]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


def _bash(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_the_openssl_checks_of_the_docs_verify_a_real_callback_and_receipt(
    requests_server: Any, receiver: Receiver
) -> None:
    server: RequestsServer = await requests_server()
    body = {"title": "Refund A-17", "fields": {"amount": 120}, "callback_url": receiver.url}
    _, created = await api("POST", f"{server.url}/api/requests", json=body)
    message = await server.message_for(created["id"])
    assert await server.click(message, action_ids.APPROVE, user="U0ALICE") == 200
    _, decided = await api("GET", f"{server.url}/api/requests/{created['id']}?wait=20")
    await eventually(lambda: receiver.received, timeout=10, what="the callback")
    headers, raw, _ = receiver.received[0]

    computed = _bash(
        _sh_block("callback-openssl"),
        {
            "SECRET": CALLBACK_SECRET,
            "WEBHOOK_ID": headers["webhook-id"],
            "WEBHOOK_TIMESTAMP": headers["webhook-timestamp"],
            "BODY": raw.decode(),
        },
    )
    assert f"v1,{computed}" in headers["webhook-signature"].split()
    forged = _bash(
        _sh_block("callback-openssl"),
        {**{"SECRET": CALLBACK_SECRET, "BODY": raw.decode().replace("U0ALICE", "U0EVE")},
         "WEBHOOK_ID": headers["webhook-id"], "WEBHOOK_TIMESTAMP": headers["webhook-timestamp"]},
    )  # fmt: skip
    assert f"v1,{forged}" not in headers["webhook-signature"].split()

    receipt = decided["receipt"]
    computed = _bash(
        _sh_block("receipt-openssl"), {"SECRET": CALLBACK_SECRET, "PAYLOAD": receipt["payload"]}
    )
    assert receipt["signature"] == f"v1,{computed}"
