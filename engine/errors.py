"""Domain exceptions raised by the engine; callers map them to their own error codes."""


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidSpec(EngineError, ValueError):
    """A model, optimizer or training setting is wrong; `field` names it (dotted path)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class InvalidData(InvalidSpec):
    """Training, validation or prediction data is unusable (shape, dtype, non-finite values)."""


class LimitExceeded(InvalidSpec):
    """A size is over a configured limit (checked with Python ints before anything is allocated)."""
