"""SQL of `session-backend export`: the ids of a session's agents and multi-agents, in id order."""

LIST_AGENT_IDS = """
SELECT agent_id FROM agents WHERE session_id = $1 ORDER BY agent_id
"""

LIST_MULTI_AGENT_IDS = """
SELECT multi_agent_id FROM multi_agents WHERE session_id = $1 ORDER BY multi_agent_id
"""
