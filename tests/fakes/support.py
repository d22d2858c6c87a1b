"""Small helpers shared by the fakes' own tests (``tests/fakes/test_fake_*.py``)."""

from __future__ import annotations

import pytest

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def without_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset proxy variables: slack-sdk ignores NO_PROXY and would send 127.0.0.1 calls there."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
