"""Plumbing both services share: serving, problem details and the body limit, logs and request metrics, identifiers.

The client library (`PostgreSQLSessionRepository` and friends) does not depend on this package.
"""
