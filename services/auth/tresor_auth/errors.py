"""The auth service's own error types; the servicer maps each to one gRPC status."""


class AuthError(Exception):
    """Base class; the message is safe to show to the caller."""


class InvalidArgument(AuthError):
    pass


class NotFound(AuthError):
    pass


class AlreadyExists(AuthError):
    pass


class PermissionDenied(AuthError):
    pass


class FailedPrecondition(AuthError):
    pass


class StoreUnavailable(AuthError):
    """PostgreSQL or Redis cannot be reached in time: every check fails closed."""
