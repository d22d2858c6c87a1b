"""The Signoff request client: ask people from any Python process, get typed answers.

::

    from bot.client import AsyncClient, Rejected

    async with AsyncClient("https://signoff.example.com", token) as signoff:
        answer = await signoff.ask(
            "Deploy billing 2.4.1 to production",
            fields={"service": "billing", "version": "2.4.1"},
            response=DeployAnswer,  # a pydantic model: sent as its JSON Schema
            responders=["U0ALICE", "group:S0SRE"],
            expires=timedelta(hours=1),
        )

``Client`` is the blocking twin. Importing this package loads httpx and pydantic only:
no slack-bolt, no aiosqlite, no engine.
"""

from bot.client.client import Approval, AsyncClient, Client, verify_receipt
from bot.client.errors import (
    ApiError,
    Cancelled,
    ClientError,
    ConnectionFailed,
    Expired,
    NotApproved,
    Rejected,
    RequestFailed,
    WaitTimeout,
)
from bot.client.models import (
    CreateRequest,
    Receipt,
    RequestList,
    RequestStatus,
    RequestView,
)

__all__ = [
    "ApiError",
    "Approval",
    "AsyncClient",
    "Cancelled",
    "Client",
    "ClientError",
    "ConnectionFailed",
    "CreateRequest",
    "Expired",
    "NotApproved",
    "Receipt",
    "Rejected",
    "RequestFailed",
    "RequestList",
    "RequestStatus",
    "RequestView",
    "WaitTimeout",
    "verify_receipt",
]
