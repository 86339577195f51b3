"""Errors of the development tools, tagged with their own steps so that a failed `totes source`
command is never mistaken for the pipeline's extract."""

from __future__ import annotations

from totes.errors import TotesError


class DevSourceError(TotesError):
    """The local totesys source could not be created, generated or changed."""

    step = "source"


class SnapshotLoadError(TotesError):
    step = "source-load"
