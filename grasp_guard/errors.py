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


class CheckpointError(GraspGuardError, ValueError):
    """A weights file does not match the architecture it is loaded into."""


class WeightsUnavailableError(GraspGuardError, RuntimeError):
    """Weights could not be fetched (offline, bad URL, checksum mismatch)."""


class ConfigError(GraspGuardError, ValueError):
    """A configuration file or option is invalid."""
