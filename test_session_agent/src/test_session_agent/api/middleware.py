"""ASGI middleware of the agent service: the shared body-size limit (`service_kit.problems.BodySizeLimit`)."""

from service_kit.problems import BodySizeLimit

__all__ = ["BodySizeLimit"]
