"""The errors and warnings of slide reading."""

__all__ = ["SlideError", "UnreadableTileWarning"]


class SlideError(ValueError):
    """A slide cannot be opened or read; the message names the slide."""


class UnreadableTileWarning(UserWarning):
    """A tile that cannot be read was skipped (``on_error="skip"``)."""
