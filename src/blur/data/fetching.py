"""Import data sets into the data root: download from mirrors, or copy from a local folder.

This is the only module of :mod:`blur.data` that imports the network code (``urllib``); the
source objects import it when their ``fetch`` is called, so loading data never does.

``blur.data.fetch(name)`` downloads from the official mirrors (overridable with ``mirror=`` or
the ``BLUR_<NAME>_MIRROR`` environment variable, e.g. ``file:///srv/mirror/mnist/`` in tests);
``fetch(name, source=DIR)`` imports from a local folder instead. Either way:

* every file is written to a temporary file inside the target folder, checked, and only then
  fsynced and renamed into place by :mod:`blur._atomic`, so an interrupted or failed fetch
  never leaves a partial file;
* checksums: MNIST and Fashion-MNIST are checked against the MD5s of the *decompressed* IDX
  bytes (so re-compressed copies such as Debian's are accepted); KMNIST publishes only MD5s of
  its ``.gz`` files, which are checked for downloads and for ``.gz`` imports that match (other
  copies get structure checks only); EMNIST's official ``gzip.zip`` and Omniglot's official
  zips are checked by MD5 of the zip, and every zip member by its CRC. All files are also
  parsed and validated (IDX header, sizes, counts, label range; PNG sizes);
* the ``.npz`` cache the loaders prefer is written at the end.

A data set that is already imported is left alone unless ``force=True``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blur import _atomic
from blur.data import omniglot as og
from blur.data.errors import ChecksumError, DataError, DataNotFoundError, DownloadError
from blur.data.idx import decompress_if_gzip, parse_idx
from blur.data.idx_source import (
    EMNIST_SPLITS,
    IDXFile,
    IDXSource,
    build_idx_cache,
    find_idx_file,
    read_idx_split,
)
from blur.data.store import STORED_SPLITS, Log, write_npz_atomic

_GZIP_MAGIC = b"\x1f\x8b"
DOWNLOAD_TIMEOUT_S = 60.0


def md5_hex(data: bytes) -> str:
    """MD5 hex digest of ``data``."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_path(path: Path) -> str:
    """MD5 hex digest of a file, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_mirrors(env_var: str, defaults: Sequence[str], mirror: str | None) -> tuple[str, ...]:
    """Mirror base URLs: ``mirror`` if given, else ``$env_var`` (comma-separated), else defaults."""
    if mirror:
        return (mirror,)
    env = os.environ.get(env_var, "").strip()
    if env:
        return tuple(m.strip() for m in env.split(",") if m.strip())
    return tuple(defaults)


def _join_url(base: str, filename: str) -> str:
    return base.rstrip("/") + "/" + filename


def _temp_in(folder: Path, name: str) -> Path:
    return _atomic.temp_file(folder / name)


def download(url: str, folder: Path, name: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``url`` to a temporary file in ``folder``; the caller checks and renames it.

    Raises:
      DownloadError: On any network/file error (the temporary file is removed).
    """
    tmp = _temp_in(folder, name)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, urllib.error.URLError | OSError | ValueError):
            raise DownloadError(f"could not download {url}: {e}") from e
        raise
    return tmp


def commit(tmp: Path, final: Path, replaces: Sequence[Path] = ()) -> Path:
    """fsync and atomically rename a checked temporary file into place (:mod:`blur._atomic`);
    then drop stale alternatives (e.g. the raw copy that a ``.gz`` replaces)."""
    _atomic.commit(tmp, final)
    for other in replaces:
        if other != final:
            other.unlink(missing_ok=True)
    return final


# ----------------------------------------------------------------------------- IDX files


def check_idx_file(path: Path, file: IDXFile, title: str, origin: str, strict_gz: bool) -> str:
    """Check a (temporary) copy of an IDX file: checksum if known, then the IDX structure.

    Args:
      path: The copy to check.
      file: What it should be.
      title: Data set title, for messages.
      origin: Where it came from (URL or source path), for messages.
      strict_gz: Require ``file.gz_md5`` to match (true for downloads from official mirrors).

    Returns:
      A short note on what was verified.

    Raises:
      ChecksumError: On an MD5 mismatch.
      IDXFormatError: If the file is not a valid IDX file.
    """
    data = path.read_bytes()
    raw = decompress_if_gzip(data, origin)
    note = "structure checked (no published checksum for this copy)"
    if file.md5 is not None:
        got = md5_hex(raw)
        if got != file.md5:
            raise ChecksumError(
                f"{origin}: MD5 of the decompressed bytes is {got}, expected {file.md5} for "
                f"{title} {file.filename}. The file is corrupt or is not the official data; it "
                "was not saved. Fetch it again, or import a good copy with --from DIR."
            )
        note = "MD5 of decompressed bytes OK"
    elif file.gz_md5 is not None and data.startswith(_GZIP_MAGIC):
        got = md5_hex(data)
        if got == file.gz_md5:
            note = "MD5 of official .gz OK"
        elif strict_gz:
            raise ChecksumError(
                f"{origin}: MD5 is {got}, expected {file.gz_md5} for the official {title} "
                f"{file.filename}.gz. The download is corrupt; it was not saved. Try again or "
                "use another --mirror."
            )
    parse_idx(raw, origin)
    return note


def _source_dirs(source: Path, folder: str) -> list[Path]:
    subdirs = ("", "package/data", "data", "raw", folder, f"{folder}/raw", "gzip")
    return [source / s if s else source for s in subdirs]


def locate_source_file(source: Path, spec: IDXSource, file: IDXFile) -> Path | None:
    """Find ``file`` (raw or ``.gz``) in a source folder or its usual subfolders."""
    for d in _source_dirs(source, spec.folder):
        found = find_idx_file(d, file)
        if found is not None:
            return found
    return None


@dataclasses.dataclass(frozen=True)
class _Staged:
    """A checked temporary copy of a file, not yet renamed into place."""

    tmp: Path
    final: Path
    origin: str


def _stage_idx_file(
    spec: IDXSource,
    file: IDXFile,
    target: Path,
    source: Path | None,
    mirrors: Sequence[str],
    log: Log,
) -> _Staged:
    """Copy or download one IDX file to a checked temporary file in ``target``."""
    if source is not None:
        src = locate_source_file(source, spec, file)
        if src is None:
            raise DataNotFoundError(
                f"{file.filename}[.gz] not found in {source} (also looked in "
                f"{', '.join(str(d) for d in _source_dirs(source, spec.folder)[1:])}). Point "
                f"--from at the folder holding the {spec.title} IDX files ({spec.source_hint})."
            )
        tmp = _temp_in(target, file.filename)
        try:
            shutil.copyfile(src, tmp)
            note = check_idx_file(tmp, file, spec.title, str(src), strict_gz=False)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        log(f"  {file.filename}: {src} ({note})")
        return _Staged(tmp, target / (file.filename + _gz_suffix(tmp)), str(src))
    errors: list[Exception] = []
    for base in mirrors:
        for name in (file.filename + ".gz", file.filename):
            url = _join_url(base, name)
            try:
                tmp = download(url, target, file.filename)
            except DownloadError as e:
                errors.append(e)
                continue
            try:
                note = check_idx_file(tmp, file, spec.title, url, strict_gz=True)
            except DataError as e:
                tmp.unlink(missing_ok=True)
                errors.append(e)
                break  # a corrupt file: try the next mirror, not the other file name
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            log(f"  {file.filename}: {url} ({note})")
            return _Staged(tmp, target / (file.filename + _gz_suffix(tmp)), url)
    _raise_fetch_failure(f"{spec.title} {file.filename}", spec.fetch_name, errors)
    raise AssertionError("unreachable")


def _gz_suffix(path: Path) -> str:
    with open(path, "rb") as f:
        return ".gz" if f.read(2) == _GZIP_MAGIC else ""


def _install_idx_set(spec: IDXSource, staged: Sequence[_Staged], root: Path) -> list[Path]:
    """Validate four staged files together (pairs, counts, labels), commit them, write the cache.

    The staged files are removed if anything fails, so a failed import leaves nothing behind.
    """
    try:
        arrays: dict[str, np.ndarray] = {}
        for i, split in enumerate(STORED_SPLITS):
            img, lab = staged[2 * i], staged[2 * i + 1]
            images, labels = read_idx_split(
                spec, img.tmp, lab.tmp, split, names=(img.origin, lab.origin)
            )
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
        for s in staged:
            stem = s.final.name.removesuffix(".gz")
            commit(s.tmp, s.final, [s.final.with_name(stem), s.final.with_name(stem + ".gz")])
    finally:
        for s in staged:
            s.tmp.unlink(missing_ok=True)
    cache = spec.cache_path(root)
    write_npz_atomic(cache, arrays)
    return [s.final for s in staged] + [cache]


def _fetch_idx_files(
    spec: IDXSource, source: Path | None, mirrors: Sequence[str], root: Path, log: Log
) -> list[Path]:
    staged: list[_Staged] = []
    try:
        for f in spec.all_files():
            staged.append(_stage_idx_file(spec, f, root / spec.folder, source, mirrors, log))
    except BaseException:
        for s in staged:
            s.tmp.unlink(missing_ok=True)
        raise
    written = _install_idx_set(spec, staged, root)
    log(f"{spec.name}: wrote {root / spec.folder} (cache {spec.cache_path(root).name})")
    return written


def _raise_fetch_failure(what: str, fetch_name: str, errors: Sequence[Exception]) -> None:
    lines = "\n".join(f"  - {e}" for e in errors)
    fix = (
        f"Import a local copy with `blur data fetch {fetch_name} --from DIR`, or pass "
        f"--mirror URL (or set BLUR_{fetch_name.upper()}_MIRROR)."
    )
    checksum = [e for e in errors if isinstance(e, ChecksumError)]
    if checksum:
        raise ChecksumError(f"could not fetch {what}: no copy passed the checks:\n{lines}\n{fix}")
    raise DownloadError(f"could not fetch {what} from any mirror:\n{lines}\n{fix}")


def fetch_idx(
    spec: IDXSource, source: Path | None, mirror: str | None, root: Path, force: bool, log: Log
) -> list[Path]:
    """Import an IDX data set (MNIST, Fashion-MNIST, KMNIST); returns the written paths."""
    status, where = spec.status(root)
    if status == "cached" and not force:
        log(f"{spec.name}: already present at {where} (use --force to re-import)")
        return [Path(where)]
    target = root / spec.folder
    if status == "raw files" and not force and source is None and mirror is None:
        path = build_idx_cache(spec, root)
        log(f"{spec.name}: built cache {path}")
        return [path]
    mirrors = resolve_mirrors(spec.mirror_env, spec.mirrors, mirror)
    log(f"{spec.name}: importing into {target}" + (f" from {source}" if source else ""))
    return _fetch_idx_files(spec, source, mirrors, root, log)


# -------------------------------------------------------------------------------- EMNIST


def _extract_emnist_zip(zip_path: Path, target: Path, origin: str, log: Log) -> list[str]:
    """Copy every ``emnist-*-ubyte.gz`` member of the official zip into ``target``."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as e:
        raise DataError(f"{origin}: not a valid zip file ({e}).") from e
    names = []
    with zf:
        for info in zf.infolist():
            base = info.filename.rsplit("/", 1)[-1]
            if not (base.startswith("emnist-") and "-ubyte" in base):
                continue
            tmp = _temp_in(target, base)
            try:
                with zf.open(info) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, length=1 << 20)
                stem = base[:-3] if base.endswith(".gz") else base
                commit(tmp, target / base, [target / stem, target / (stem + ".gz")])
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            names.append(base)
    if not names:
        raise DataError(f"{origin}: no emnist-*-ubyte files inside; is this EMNIST's gzip.zip?")
    log(f"  extracted {len(names)} files from {origin}")
    return names


def fetch_idx_group(
    specs: Sequence[IDXSource],
    source: Path | None,
    mirror: str | None,
    root: Path,
    force: bool,
    log: Log,
) -> list[Path]:
    """Import every data set of a group that ``source`` holds, or all of them from the
    group's official archive (EMNIST: every split found, or all six from ``gzip.zip``)."""
    group = specs[0].fetch_name
    if not force and all(s.status(root)[0] == "cached" for s in specs):
        log(f"{group}: already present in {root / specs[0].folder} (use --force to re-import)")
        return [s.cache_path(root) for s in specs]
    target = root / specs[0].folder
    archive, archive_md5 = specs[0].archive, specs[0].archive_md5
    assert archive is not None
    checked: set[str] = set()  # splits whose files were checked while being installed
    written: list[Path] = []
    if source is None:
        mirrors = resolve_mirrors(specs[0].mirror_env, specs[0].mirrors, mirror)
        errors: list[Exception] = []
        for base in mirrors:
            url = _join_url(base, archive)
            try:
                tmp = download(url, target, archive)
            except DownloadError as e:
                errors.append(e)
                continue
            try:
                got = md5_path(tmp)
                if got != archive_md5:
                    raise ChecksumError(f"{url}: MD5 is {got}, expected {archive_md5}; not saved.")
                _extract_emnist_zip(tmp, target, url, log)
            except DataError as e:
                errors.append(e)
                continue
            finally:
                tmp.unlink(missing_ok=True)
            break
        else:
            _raise_fetch_failure(f"{specs[0].title} {archive}", group, errors)
    else:
        for folder in (source, source / "gzip"):
            for z in sorted(folder.glob("*.zip")) if folder.is_dir() else ():
                if z.name == archive and (got := md5_path(z)) != archive_md5:
                    raise ChecksumError(
                        f"{z}: MD5 is {got}, expected {archive_md5} for EMNIST's {archive}. "
                        "Download it again."
                    )
                _extract_emnist_zip(z, target, str(z), log)
        for spec in specs:
            if all(locate_source_file(source, spec, f) for f in spec.all_files()):
                written.extend(_fetch_idx_files(spec, source, (), root, log))
                checked.add(spec.name)
    for spec in specs:
        if not all(find_idx_file(target, f) for f in spec.all_files()):
            continue
        if spec.name in checked:
            continue
        for f in spec.all_files():
            path = find_idx_file(target, f)
            assert path is not None
            check_idx_file(path, f, spec.title, str(path), strict_gz=False)
        written.append(build_idx_cache(spec, root))
        log(f"{spec.name}: wrote cache {spec.cache_path(root)}")
    if not written:
        raise DataNotFoundError(
            f"no EMNIST split found in {source}: expected files named like "
            "emnist-<split>-train-images-idx3-ubyte[.gz] (splits: "
            f"{', '.join(EMNIST_SPLITS)}) or the official {archive}."
        )
    return written


# ------------------------------------------------------------------------------ Omniglot


def _source_candidates(source: Path) -> dict[str, Path]:
    found = og.raw_sources(source)
    found.update({k: v for k, v in og.raw_sources(source / "python").items() if k not in found})
    if not found and source.is_dir() and source.name.startswith("images_"):
        found[og.subset_name(source)] = source
    if not found and source.is_file() and source.suffix == ".zip":
        found[og.subset_name(source)] = source
    return found


def _commit_omniglot_zip(
    tmp: Path, filename: str, origin: str, target: Path, log: Log, strict: bool
) -> Path:
    """Check a temporary copy of an Omniglot zip, rename it into place, write its cache."""
    subset = og.subset_name(filename)
    try:
        expected = og.OMNIGLOT_ZIP_MD5.get(filename)
        got = md5_path(tmp)
        if expected is not None and got != expected:
            raise ChecksumError(
                f"{origin}: MD5 is {got}, expected {expected} for {filename}. The file is "
                "corrupt or modified; it was not saved."
            )
        if expected is None and strict:
            raise ChecksumError(f"{origin}: no known checksum for {filename}; not saved.")
        data = og.read_subset(tmp)
        final = commit(tmp, target / filename)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    og.write_cache(data, og.cache_path(target.parent, subset, og.DEFAULT_IMAGE_SIZE))
    note = "MD5 OK" if expected else "no published MD5: structure and zip CRCs checked"
    log(
        f"  {subset}: {len(data.char_names)} characters, {data.images.shape[0]} drawings from "
        f"{origin} ({note})"
    )
    return final


def _install_omniglot_folder(subset: str, src: Path, target: Path, log: Log) -> Path:
    """Check an unpacked Omniglot folder, copy it into place, write its cache."""
    data = og.read_subset(src)
    final = target / src.name
    tmp_dir = _atomic.temp_dir(final)
    try:
        shutil.copytree(src, tmp_dir, dirs_exist_ok=True)
    except BaseException:
        _atomic.discard(tmp_dir)
        raise
    _atomic.commit(tmp_dir, final)
    og.write_cache(data, og.cache_path(target.parent, subset, og.DEFAULT_IMAGE_SIZE))
    log(
        f"  {subset}: {len(data.char_names)} characters, {data.images.shape[0]} drawings from "
        f"{src} (folder: structure checked)"
    )
    return final


def fetch_omniglot(
    source: Path | None, mirror: str | None, root: Path, force: bool, log: Log
) -> list[Path]:
    """Import Omniglot zips/folders from ``source``, or download the two official zips."""
    target = root / og.FOLDER
    target.mkdir(parents=True, exist_ok=True)
    present = og.available_subsets(root)
    written: list[Path] = []
    if source is not None:
        found = _source_candidates(source)
        if not found:
            raise DataNotFoundError(
                f"no Omniglot data in {source}: expected images_*.zip files (e.g. "
                "images_background.zip, images_background_small1.zip) or unpacked images_* "
                "folders in the <set>/<alphabet>/<character>/<drawing>.png layout."
            )
        for subset, src in found.items():
            if present.get(subset) == "cached" and not force:
                log(f"  {subset}: already present (use --force to re-import)")
            elif src.is_file():
                tmp = _temp_in(target, src.name)
                shutil.copyfile(src, tmp)
                written.append(_commit_omniglot_zip(tmp, src.name, str(src), target, log, False))
            else:
                written.append(_install_omniglot_folder(subset, src, target, log))
    else:
        mirrors = resolve_mirrors("BLUR_OMNIGLOT_MIRROR", og.OMNIGLOT_MIRRORS, mirror)
        for filename in og.OMNIGLOT_DOWNLOADS:
            subset = og.subset_name(filename)
            if present.get(subset) == "cached" and not force:
                log(f"  {subset}: already present (use --force to re-import)")
                continue
            errors: list[Exception] = []
            for base in mirrors:
                url = _join_url(base, filename)
                try:
                    tmp = download(url, target, filename)
                    written.append(_commit_omniglot_zip(tmp, filename, url, target, log, True))
                except DataError as e:
                    errors.append(e)
                    continue
                break
            else:
                _raise_fetch_failure(f"Omniglot {filename}", "omniglot", errors)
    return written
