"""Routers of the agent service, one per resource."""
