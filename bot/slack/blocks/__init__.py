"""Block Kit without I/O: resume models to messages and modals, and submissions back to data.

Every function here is pure (no network, no engine), so it is tested on ``to_dict()`` output.
"""
