"""Requests from outside the process: the built-in request workflow, its API views, receipts
and callbacks (``POST /api/requests``; see docs/requests.md)."""
