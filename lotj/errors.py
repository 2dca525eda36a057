"""Errors raised for bad input. One type, so that callers and the CLI can catch it."""


class ConfigError(ValueError):
    """A configuration or parameter value that lotj refuses, with the key and what is allowed."""
