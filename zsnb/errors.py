"""Errors zsnb raises on bad input: each message says what was wrong and what to do."""

from __future__ import annotations


class ZsnbError(ValueError):
    """Base class: bad input to a zsnb function (a ValueError, so generic handlers still catch it)."""


class ImageError(ZsnbError):
    """An image that is empty, corrupt, too small or of an unsupported mode."""


class UnknownNameError(ZsnbError, KeyError):
    """An unknown backbone, layer or tap name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class WeightsUnavailable(ZsnbError, OSError):
    """Pretrained weights that are not on this machine; the message says how to get them."""
