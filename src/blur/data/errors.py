"""Error types of the data layer (:mod:`blur.data`).

Every error is a :class:`ValueError` subclass whose message names the file or data set and
the fix, so that ``except ValueError`` catches all of them.
"""

from __future__ import annotations


class DataError(ValueError):
    """Base class for problems with data files, caches and downloads."""


class DataNotFoundError(DataError):
    """A data set was asked for but is not in the data directory.

    The message gives the exact command that imports it (``blur data fetch NAME ...``).
    """


class IDXFormatError(DataError):
    """An IDX file is malformed: bad magic, bad dims, truncated, or inconsistent counts."""


class ChecksumError(DataError):
    """A downloaded or imported file does not have the expected MD5 checksum."""


class DownloadError(DataError):
    """A file could not be fetched from any mirror."""
