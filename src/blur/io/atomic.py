"""Atomic file writes (the implementation lives in :mod:`blur._atomic`, upstream of tasks)."""

from blur._atomic import write_bytes_atomic as write_bytes_atomic
from blur._atomic import write_text_atomic as write_text_atomic
