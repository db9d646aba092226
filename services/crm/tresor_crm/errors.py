"""The CRM's own errors; mapped once to problem+json responses and once to gRPC codes."""


class CrmError(Exception):
    """Base class; the message is safe to show."""

    status = 500
    title = "Internal error"


class InvalidInput(CrmError):
    status = 422
    title = "Invalid input"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        # field name -> what is wrong with it, shown next to the field
        self.fields = fields or {}


class NotFound(CrmError):
    status = 404
    title = "Not found"


class Conflict(CrmError):
    """A stale edit: someone else saved the record first."""

    status = 409
    title = "Edit conflict"


class Forbidden(CrmError):
    status = 403
    title = "Forbidden"


class TooLarge(CrmError):
    status = 413
    title = "Too large"


class Unavailable(CrmError):
    status = 503
    title = "Unavailable"
