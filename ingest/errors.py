"""The one error a source raises for input it cannot use at all."""


class SourceError(RuntimeError):
    """A source that cannot be opened or read (missing file, empty folder, bad URL)."""
