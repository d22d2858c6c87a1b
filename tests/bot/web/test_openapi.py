"""The OpenAPI document: generated from the models, and fuzzed with schemathesis."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.web.models import ResumeRequest, RunDetailView, StartRunRequest
from tests.bot.web.service import AUTH, TOKEN, running_service

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def _ref_free(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "$defs"}


async def test_document_is_openapi_31_built_from_the_models(tmp_path: Path) -> None:
    async with running_service(str(tmp_path / "doc.db")) as svc:
        doc = await (await svc.client.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    ops = {(m, p) for p, methods in doc["paths"].items() for m in methods}
    assert {
        ("post", "/api/runs"),
        ("get", "/api/runs/{run_id}"),
        ("post", "/api/runs/{run_id}/interrupts/{interrupt_id}/resume"),
        ("get", "/api/runs/{run_id}/stream"),
        ("post", "/hooks/{workflow}"),
        ("get", "/healthz"),
        ("get", "/metrics"),
    } <= ops
    schemas = doc["components"]["schemas"]
    template = "#/components/schemas/{model}"
    for model in (StartRunRequest, ResumeRequest):
        expected = model.model_json_schema(ref_template=template)
        assert schemas[model.__name__]["properties"] == _ref_free(expected)["properties"]
    detail = RunDetailView.model_json_schema(mode="serialization", ref_template=template)
    assert set(schemas["RunDetailView"]["properties"]) == set(detail["properties"])
    resume = doc["paths"]["/api/runs/{run_id}/interrupts/{interrupt_id}/resume"]["post"]
    assert {"403", "409", "422"} <= set(resume["responses"])
    assert resume["security"] == [{"bearer": []}]


@pytest.mark.timeout(90)
async def test_schemathesis_finds_no_server_errors(tmp_path: Path) -> None:
    async with running_service(str(tmp_path / "fuzz.db")) as svc:
        # A finished run gives the fuzzer real ids to hit (detail, events, a stream that
        # ends at once, a resume that is refused as already resolved).
        run_id = await svc.engine.start("order", {"item": "seed"}, requester="carol")
        await svc.engine.wait(run_id, timeout=10)
        (interrupt,) = await svc.engine.list_interrupts(run_id=run_id)
        await svc.engine.resume(run_id, interrupt.id, {"approved": True}, actor="alice")
        await svc.engine.wait(run_id, timeout=10)
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            f'[parameters]\n"path.run_id" = "{run_id}"\n'
            f'"path.interrupt_id" = "{interrupt.id}"\n"path.name" = "order"\n'
        )
        base = f"http://127.0.0.1:{svc.client.port}"
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        proc = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "--config-file",
            str(config),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,"
            "content_type_conformance,response_schema_conformance",
            "--max-examples",
            "15",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "7",
            "--no-shrink",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 80)
        report = out.decode(errors="replace")
        assert proc.returncode == 0, report[-4000:]
        assert "passed" in report
        # The seeded run was answered once and stays so, whatever the fuzzer sent.
        detail = await svc.engine.get_run(run_id)
        assert detail.run.status.value == "completed"
        assert AUTH  # the token the fuzzer used is the service's
