"""The error every part of ``nb2pipe profile``'s measurement raises."""

from __future__ import annotations

from nb2pipe.errors import Nb2PipeError


class MeasureError(Nb2PipeError):
    """A model could not be served or measured."""
