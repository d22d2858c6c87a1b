"""``signoff mcp``: Signoff's request tools for AI agents over MCP (see ``bot.mcp.server``)."""
