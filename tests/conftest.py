"""Task/data test fixtures: an isolated data directory, and skips for absent real data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from blur.data import clear_caches, data_dir, get_source
from blur.data.omniglot import available_subsets

REAL_DATA_DIR = data_dir()  # $BLUR_DATA_DIR or ~/.cache/blur, read before any test patches it


@pytest.fixture
def tmp_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty ``$BLUR_DATA_DIR`` (memoised data sets are forgotten before and after)."""
    root = tmp_path / "blur-data"
    root.mkdir()
    monkeypatch.setenv("BLUR_DATA_DIR", str(root))
    clear_caches()
    yield root
    clear_caches()


def _require(name: str) -> Path:
    if name == "omniglot":
        have = available_subsets(REAL_DATA_DIR)
        missing = [s for s in ("background_small1", "background_small2") if s not in have]
        if missing:
            pytest.skip(
                f"Omniglot subsets {missing} are not in {REAL_DATA_DIR}: run `blur data fetch "
                "omniglot --from ../shared/data/omniglot` (or scripts/fetch_data.sh)"
            )
    elif get_source(name).status(REAL_DATA_DIR)[0] == "missing":
        pytest.skip(f"{name} is not in {REAL_DATA_DIR}: run {get_source(name).hint()}")
    return REAL_DATA_DIR


@pytest.fixture
def require_dataset() -> Callable[[str], Path]:
    """``require_dataset(name)`` skips the test unless ``name`` is imported (real data dir)."""
    return _require
