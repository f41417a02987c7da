"""Service-only parts of the agent service besides the turn.

Agent profiles' sessions (`invocations`), built-in tools and the `handoff` tool, bundled profile examples, actor
memory wiring, and the `SESSION_MANAGER` choice (`session_managers`).
"""
