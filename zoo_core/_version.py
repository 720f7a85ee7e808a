"""zoo's version, in one place (hatch reads it when building)."""

__version__ = "0.1.0"
