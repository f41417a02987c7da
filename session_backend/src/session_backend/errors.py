"""Domain errors raised by the store; the app maps each to one HTTP status in a single place."""


class StoreError(Exception):
    """Base of every domain error; `detail` is safe to show to clients."""

    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(StoreError):
    """The session, agent, message or multi-agent does not exist (or its session has expired)."""

    status = 404
    title = "Not Found"


class AlreadyExists(StoreError):
    """A create named an id that is already taken."""

    status = 409
    title = "Conflict"


class Conflict(StoreError):
    """The write contradicts what is stored (different message content at an existing message_id)."""

    status = 409
    title = "Conflict"


class PreconditionFailed(StoreError):
    """An `If-Match` version did not match the stored one: someone else wrote first."""

    status = 412
    title = "Precondition Failed"


class SessionBusy(StoreError):
    """Another owner holds a live lease on the session."""

    status = 409
    title = "Conflict"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class LeaseNotHeld(StoreError):
    """A write claimed a lease the writer does not (or no longer) hold."""

    status = 409
    title = "Conflict"
