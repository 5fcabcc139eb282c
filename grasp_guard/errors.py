"""The few, flat exceptions of the engine; each maps to one exit status and one HTTP status."""


class GraspGuardError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidImageError(GraspGuardError, ValueError):
    """The bytes are not an image we can decode: empty, truncated, corrupt or unknown."""


class UnsupportedFormatError(GraspGuardError, ValueError):
    """The image decodes but its format cannot be re-encoded faithfully."""


class ImageTooLargeError(GraspGuardError, ValueError):
    """The image exceeds the pixel or byte limit (decompression-bomb guard)."""


class SizeBudgetError(GraspGuardError, ValueError):
    """The protected image cannot meet the requested byte size (size_mode max or exact)."""


class NotComparableError(GraspGuardError, ValueError):
    """``verify``: the received copy does not line up with the original (another photo, or
    one the site changed past comparing), so no verdict can be given."""


class CheckpointError(GraspGuardError, ValueError):
    """A weights file does not match the architecture it is loaded into."""


class WeightsUnavailableError(GraspGuardError, RuntimeError):
    """Weights could not be fetched (offline, bad URL, checksum mismatch)."""


class ConfigError(GraspGuardError, ValueError):
    """A configuration file or option is invalid."""


class QueueFullError(GraspGuardError, RuntimeError):
    """The service cannot take the request now (its queue is full, or the request would not
    finish before its deadline); the client should retry later (HTTP 429).

    Attributes:
        retry_after_s: whole seconds after which the request is expected to fit; None: the
            service's configured ``Retry-After``.
    """

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServiceUnavailableError(GraspGuardError, RuntimeError):
    """The service cannot take requests now: models still loading, or shutting down (503)."""


class DeadlineExceededError(GraspGuardError, TimeoutError):
    """A request did not finish within the service's per-request deadline; its work is dropped.

    Attributes:
        started: whether its optimisation had begun (504) or it was still queued (503).
    """

    def __init__(self, message: str, *, started: bool) -> None:
        super().__init__(message)
        self.started = started

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuilt by keyword: the error crosses processes (the Ray backend's replicas).
        return _deadline_exceeded, (str(self), self.started)


def _deadline_exceeded(message: str, started: bool) -> DeadlineExceededError:
    return DeadlineExceededError(message, started=started)
