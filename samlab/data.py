"""Datasets for SPEC §4, and the loader that keeps them on the GPU.

What is here, top to bottom:

- **CIFAR-10**, canonical: torchvision's files in ``data_dir()/cifar-10-batches-py``,
  checked against the md5s torchvision ships (:func:`load_cifar10`).
- **CIFAR-10, JPEG copy** (``cifar10-jpeg.npz``, development only): real images, but
  **not** bit-identical to CIFAR-10, so anything measured on it carries
  :data:`JPEG_LABEL` (:func:`load_cifar10_jpeg`). Decoded once, cached as ``.npy``.
- **digits**: scikit-learn's bundled 8×8 digits, for CPU demos (no download).
- **random**: CIFAR-shaped noise, for timing only.
- :func:`split_train_val` (45,000 / 5,000), :class:`ImageData` and :func:`load_dataset`,
  which puts any of the above in one shape.
- :class:`DeviceLoader`: the whole set as one uint8 tensor on the device; shuffling,
  random crop + flip and normalization happen there, in batches (airbench's recipe).
- :func:`torchvision_loader`: the same augmentation the usual way (PIL transforms in
  DataLoader workers), the baseline the benchmark compares against.

Conventions: images are **uint8 NHWC** numpy arrays in host memory (the layout of
image files and of CIFAR-10's arrays); labels are int64. Only the loaders turn them
into float NCHW tensors. ``mean``/``std`` are per channel on the [0, 1] scale, as
``torchvision.transforms.Normalize`` takes them.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .paths import (
    CIFAR10_FILES,
    CIFAR10_FOLDER,
    CIFAR10_META_FILE,
    CIFAR10_TEST_FILE,
    CIFAR10_TRAIN_FILES,
    data_dir,
)

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# Labels for plots and logs: a number measured on the JPEG copy is not a CIFAR-10 number.
CIFAR10_LABEL = "CIFAR-10"
JPEG_LABEL = "JPEG-recompressed CIFAR-10"
DIGITS_LABEL = "scikit-learn digits (8x8)"
RANDOM_LABEL = "random uint8 images (timing only)"

DATASETS = ("cifar10", "cifar10-jpeg", "digits", "random")


JPEG_NAME = "cifar10-jpeg.npz"

# digits: a fixed test set (as CIFAR-10's is fixed), whatever the split seed.
DIGITS_TEST_SIZE = 360
DIGITS_TEST_SEED = 0


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# --- CIFAR-10, canonical -----------------------------------------------------------


@dataclass(frozen=True, repr=False, eq=False)
class CifarArrays:
    """CIFAR-10 as arrays: images uint8 ``[N, 32, 32, 3]`` (NHWC), labels int64 ``[N]``."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]

    def __repr__(self) -> str:
        return (
            f"CifarArrays(train={len(self.train_labels)}, test={len(self.test_labels)}, "
            f"classes={len(self.classes)})"
        )


def cifar10_md5() -> dict[str, str]:
    """``{file name: md5}`` of CIFAR-10's seven files, as torchvision ships them.

    Read from ``torchvision.datasets.CIFAR10.train_list/test_list/meta``, the list that
    torchvision's own ``CIFAR10._check_integrity`` uses, so samlab never carries a copy.
    """
    from torchvision.datasets import CIFAR10

    pairs = [*CIFAR10.train_list, *CIFAR10.test_list]
    pairs.append([CIFAR10.meta["filename"], CIFAR10.meta["md5"]])
    return {name: md5 for name, md5 in pairs}


def load_cifar10(
    root: str | Path | None = None,
    download: bool = False,
    *,
    md5: Mapping[str, str] | None = None,
) -> CifarArrays:
    """The canonical CIFAR-10: 50,000 training and 10,000 test images, md5-checked.

    ``root`` is the folder that holds ``cifar-10-batches-py/`` (torchvision's
    convention; default :func:`samlab.paths.data_dir`). Every file is checked with
    torchvision's ``check_integrity`` against ``md5`` (default :func:`cifar10_md5`, the
    md5s torchvision ships; tests inject their own). With ``download=True``, missing or
    corrupt files are fetched with torchvision's downloader first.

    Raises ``FileNotFoundError`` when a file is missing, ``RuntimeError`` when one is
    corrupt, ``ConnectionError`` when the download fails; each message names the files
    and the fix.
    """
    from torchvision.datasets.utils import calculate_md5, check_integrity

    root = Path(root) if root is not None else data_dir()
    expected = dict(cifar10_md5() if md5 is None else md5)
    unknown = [name for name in CIFAR10_FILES if name not in expected]
    if unknown:
        raise ValueError(
            f"md5 must give a checksum for each of {list(CIFAR10_FILES)}, missing {unknown}"
        )
    folder = root / CIFAR10_FOLDER

    def problems() -> dict[Path, str]:
        found = {}
        for name in CIFAR10_FILES:
            path = folder / name
            if not path.is_file():
                found[path] = "missing"
            elif not check_integrity(str(path), expected[name]):
                found[path] = f"corrupt: md5 {calculate_md5(str(path))}, expected {expected[name]}"
        return found

    trouble = problems()
    if trouble and download:
        _download_cifar10(root)
        trouble = problems()
    if trouble:
        raise _cifar10_files_error(root, trouble)

    train = [_read_cifar_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    test_images, test_labels = _read_cifar_batch(folder / CIFAR10_TEST_FILE)
    with open(folder / CIFAR10_META_FILE, "rb") as f:
        meta = _str_keys(pickle.load(f, encoding="latin1"))
    classes = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in meta["label_names"])
    return CifarArrays(
        train_images=np.concatenate([images for images, _ in train]),
        train_labels=np.concatenate([labels for _, labels in train]),
        test_images=test_images,
        test_labels=test_labels,
        classes=classes,
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch: ``data`` is uint8 ``[N, 3072]``, each row a CHW image, row-major."""
    with open(path, "rb") as f:
        # latin1, as torchvision: the files are Python 2 pickles of numpy arrays.
        entry = _str_keys(pickle.load(f, encoding="latin1"))
    data = np.asarray(entry["data"], dtype=np.uint8)
    labels = np.asarray(entry["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise RuntimeError(
            f"{path} is not a CIFAR-10 batch: data has shape {data.shape}, expected "
            f"[N, 3072], with {len(labels)} labels"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _str_keys(entry: dict) -> dict:
    """Python 2 pickles give ``str`` keys under latin1, Python 3 ones may give ``bytes``."""
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _fetch_command(root: Path) -> str:
    argument = "" if root == data_dir() else f"root={str(root)!r}, "
    return f'python -c "import samlab.data as d; d.load_cifar10({argument}download=True)"'


def _cifar10_files_error(root: Path, trouble: dict[Path, str]) -> OSError | RuntimeError:
    from torchvision.datasets import CIFAR10

    lines = "\n".join(f"  {path}: {what}" for path, what in trouble.items())
    corrupt = [path for path, what in trouble.items() if what != "missing"]
    folder = root / CIFAR10_FOLDER
    message = (
        f"CIFAR-10 in {folder} is not usable:\n{lines}\n"
        f"To fix it, {'delete the corrupt file(s) above and ' if corrupt else ''}"
        f"download CIFAR-10 (about 170 MB; needs the network):\n  {_fetch_command(root)}\n"
        f"Offline: copy {CIFAR10.filename} (from {CIFAR10.url}) into {root} and run the same "
        f"command (it checks the archive's md5 and extracts it), or extract it yourself so "
        f"that {folder} holds {', '.join(CIFAR10_FILES)}.\n"
        f"`samlab doctor` shows what the data directory holds (SAMLAB_DATA moves it)."
    )
    if len(corrupt) < len(trouble):
        return FileNotFoundError(message)
    return RuntimeError(message)


def _download_cifar10(root: Path) -> None:
    """torchvision's download: fetch the archive (unless a verified one is in ``root``), extract."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    archive = root / CIFAR10.filename
    try:
        download_and_extract_archive(
            CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
        )
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad md5 a RuntimeError
        raise ConnectionError(
            f"could not download CIFAR-10 from {CIFAR10.url} into {root}: {error}\n"
            f"Offline? Fetch {CIFAR10.filename} elsewhere and put it at {archive} (it is "
            f"checked against md5 {CIFAR10.tgz_md5} and extracted on the next "
            f"download=True), or extract it yourself so that {root / CIFAR10_FOLDER} holds "
            f"{', '.join(CIFAR10_FILES)}."
        ) from error


# --- CIFAR-10, the JPEG copy (development) -----------------------------------------


def find_cifar10_jpeg() -> Path | None:
    """Where ``cifar10-jpeg.npz`` is: ``data/``, or ``../shared/data`` beside the repo."""
    root = Path(__file__).resolve().parent.parent
    for candidate in (data_dir() / JPEG_NAME, root.parent / "shared" / "data" / JPEG_NAME):
        if candidate.is_file():
            return candidate
    return None


def load_cifar10_jpeg(
    split: str = "train",
    n: int | None = None,
    *,
    seed: int = 0,
    path: str | Path | None = None,
    cache: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of ``split`` ("train" or "test") of the JPEG copy, seeded shuffle.

    Returns ``(images [n, 32, 32, 3] uint8, labels [n] int64)``: the first ``n`` of a
    permutation drawn with ``seed`` (the file is ordered by class, so the shuffle is
    what makes a subset balanced in expectation). Label results with :data:`JPEG_LABEL`.

    Decoding all 50,000 training images takes seconds, so the decoded split is cached in
    ``data_dir()/cache/`` (keyed by the npz's size and modification time; delete the
    folder to clear it). It is written when a whole split is decoded (``n=None``) and
    used by every later call; a subset with no cache yet decodes just its ``n`` images.
    ``cache=False`` neither reads nor writes it.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not (_is_int(seed) and seed >= 0):
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    path = _jpeg_path(path)
    with np.load(path) as z:
        labels = z[f"{split}_labels"].astype(np.int64)
    total = len(labels)
    if n is None:
        n = total
    if not (_is_int(n) and 1 <= n <= total):
        raise ValueError(f"n must be an integer in 1..{total}, got {n!r}")
    order = np.random.default_rng(seed).permutation(total)[:n]
    return _jpeg_images(path, split, total, order, cache), labels[order]


def _jpeg_path(path: str | Path | None) -> Path:
    found = Path(path) if path is not None else find_cifar10_jpeg()
    if found is None or not found.is_file():
        where = (
            f"path={str(path)!r} is not a file"
            if path is not None
            else (f"looked in {data_dir()} and ../shared/data")
        )
        raise FileNotFoundError(f"{JPEG_NAME} not found ({where}); pass path= to the file")
    return found


def _jpeg_images(
    path: Path, split: str, total: int, indices: np.ndarray | None, cache: bool
) -> np.ndarray:
    """Images ``indices`` (None: all, in file order) of ``split``, from the cache if any."""
    cache_file = _jpeg_cache_file(path, split)
    cached = _read_cache(cache_file, (total, 32, 32, 3)) if cache else None
    if cached is not None:
        return np.array(cached if indices is None else cached[indices])
    if indices is not None and len(indices) < total:
        return _decode_jpeg_split(path, split, indices)
    decoded = _decode_jpeg_split(path, split, np.arange(total))
    if cache:
        _write_cache(cache_file, decoded)
    return decoded if indices is None else decoded[indices]


def _decode_jpeg_split(path: Path, split: str, indices: np.ndarray) -> np.ndarray:
    from PIL import Image

    with np.load(path) as z:
        jpeg, offsets = z[f"{split}_jpeg"], z[f"{split}_offsets"]
    images = np.empty((len(indices), 32, 32, 3), dtype=np.uint8)
    for j, i in enumerate(indices):
        blob = jpeg[offsets[i] : offsets[i + 1]].tobytes()
        images[j] = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
    return images


def _jpeg_cache_file(path: Path, split: str) -> Path:
    stat = path.stat()
    key = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return data_dir() / "cache" / f"{path.stem}-{split}-{key}.npy"


def _read_cache(file: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array, or None when there is none or it is not the expected uint8 shape."""
    if not file.is_file():
        return None
    try:
        array = np.load(file, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if array.shape != shape or array.dtype != np.uint8:
        return None
    return array


def _write_cache(file: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``file`` atomically (temp file, then ``os.replace``), or warn."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, array)
            os.replace(tmp, file)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as error:
        warnings.warn(f"could not write the cache {file}: {error}", stacklevel=3)


# --- splits ------------------------------------------------------------------------


def split_train_val(
    labels_or_n: np.ndarray | Sequence[int] | int, n_val: int = 5000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of a training set into ``(train_idx, val_idx)`` (SPEC §4: 45,000/5,000).

    Given labels, the split is **stratified**: each class gives the validation set its
    share ``n_val · n_c / N`` (largest remainders round it), drawn by a seeded
    permutation within the class, so CIFAR-10's 5,000 are 500 per class. Given a count
    ``N``, it is a plain seeded permutation: the last ``n_val`` indices go to validation.

    Both index arrays (int64) are in a seeded random order, so a prefix is a random
    subset; they partition ``0..N-1`` and depend only on ``(labels or N, n_val, seed)``.
    """
    if _is_int(labels_or_n):
        labels, total = None, int(labels_or_n)
        if total < 1:
            raise ValueError(f"labels_or_n as a count must be >= 1, got {total}")
    else:
        labels = np.asarray(labels_or_n)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                "labels_or_n must be a 1-D array of integer labels or a count, got "
                f"shape {labels.shape} dtype {labels.dtype}"
            )
        total = len(labels)
    if not (_is_int(n_val) and 0 <= n_val <= total):
        raise ValueError(f"n_val must be an integer in 0..{total}, got {n_val!r}")
    if not (_is_int(seed) and seed >= 0):
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(total)
        return order[: total - n_val], order[total - n_val :]

    classes, counts = np.unique(labels, return_counts=True)
    share = n_val * counts / total
    quota = np.floor(share).astype(np.int64)
    # Largest remainders take the rounding; ties go to the smaller class label.
    by_remainder = np.argsort(-(share - quota), kind="stable")
    quota[by_remainder[: n_val - quota.sum()]] += 1
    val = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    val_idx = rng.permutation(np.concatenate(val))
    in_val = np.zeros(total, dtype=bool)
    in_val[val_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~in_val))
    return train_idx.astype(np.int64), val_idx.astype(np.int64)


# --- ImageData and load_dataset ----------------------------------------------------


@dataclass(frozen=True, repr=False, eq=False)
class ImageData:
    """A dataset as train / validation / test splits, ready for :class:`DeviceLoader`.

    Images are uint8 NHWC numpy arrays (``[N, H, W, C]``), labels int64 ``[N]``.
    ``mean``/``std`` are the per-channel statistics to normalize with, on the [0, 1]
    scale. ``label`` is the string that goes on plots and logs (e.g. :data:`JPEG_LABEL`).
    """

    name: str
    label: str
    classes: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        return tuple(self.train_images.shape[1:])

    def __repr__(self) -> str:
        h, w, c = self.image_shape
        return (
            f"ImageData({self.name!r}, {self.label!r}, train={len(self.train_labels)}, "
            f"val={len(self.val_labels)}, test={len(self.test_labels)}, "
            f"images {h}x{w}x{c} uint8, {self.num_classes} classes)"
        )


def load_dataset(
    name: str,
    *,
    n_train: int | None = None,
    n_val: int | None = None,
    split_seed: int = 0,
    path: str | Path | None = None,
    download: bool = False,
) -> ImageData:
    """One of :data:`DATASETS` as :class:`ImageData`.

    - ``"cifar10"``: canonical CIFAR-10 (:func:`load_cifar10`; ``path`` is the folder
      holding ``cifar-10-batches-py``, ``download`` fetches it). 45,000/5,000/10,000.
    - ``"cifar10-jpeg"``: the JPEG copy (:func:`load_cifar10_jpeg`; ``path`` is the
      npz), same splits, labelled :data:`JPEG_LABEL`.
    - ``"digits"``: scikit-learn's 1,797 8×8 digits, 1 channel. Pixel values 0..16 are
      stored as uint8 ``rint(v · 255/16)`` so every dataset is uint8 (the loaders divide
      by 255). Test set: a fixed stratified 360 (seed 0, whatever ``split_seed``, as
      CIFAR-10's test set is fixed); validation 180 by default; training the rest.
    - ``"random"``: uniform uint8 noise shaped like CIFAR-10, random labels; for timing.

    Validation is a stratified split of the training set with ``split_seed``
    (:func:`split_train_val`; ``n_val`` defaults to 5,000, 180 for digits; 0 keeps all for
    training). ``n_train`` keeps a seeded stratified subset of the training split, for
    quick runs. Mean/std: CIFAR-10's published training statistics for both CIFAR
    variants, the training split's own statistics for digits, the exact uniform values
    for random.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    if path is not None and name in ("digits", "random"):
        raise ValueError(f"path is only for 'cifar10' and 'cifar10-jpeg', got path={path!r}")
    if download and name != "cifar10":
        raise ValueError(f"download=True is only for 'cifar10', got name={name!r}")
    if n_train is not None and not (_is_int(n_train) and n_train >= 1):
        raise ValueError(f"n_train must be None or an integer >= 1, got {n_train!r}")
    if not (_is_int(split_seed) and split_seed >= 0):
        raise ValueError(f"split_seed must be an integer >= 0, got {split_seed!r}")

    if name == "random":
        return _random_data(n_train, 5000 if n_val is None else n_val, split_seed)
    if name == "digits":
        pool_images, pool_labels, test_images, test_labels, classes = _digits_arrays()
        label, n_val = DIGITS_LABEL, 180 if n_val is None else n_val
    else:
        if name == "cifar10":
            arrays = load_cifar10(path, download=download)
            pool_images, pool_labels, classes, label = (
                arrays.train_images,
                arrays.train_labels,
                arrays.classes,
                CIFAR10_LABEL,
            )
            test_images, test_labels = arrays.test_images, arrays.test_labels
        else:
            pool_images, pool_labels = _jpeg_in_file_order("train", path)
            test_images, test_labels = _jpeg_in_file_order("test", path)
            classes, label = CIFAR10_CLASSES, JPEG_LABEL
        n_val = 5000 if n_val is None else n_val

    train_idx, val_idx = split_train_val(pool_labels, n_val=n_val, seed=split_seed)
    if n_train is not None:
        if n_train > len(train_idx):
            raise ValueError(
                f"n_train must be at most the {len(train_idx)} training images left after "
                f"n_val={n_val}, got {n_train}"
            )
        _, keep = split_train_val(pool_labels[train_idx], n_val=n_train, seed=split_seed)
        train_idx = train_idx[keep]
    train_images = pool_images[train_idx]
    if name == "digits":
        pixels = train_images.astype(np.float64) / 255
        mean, std = (float(pixels.mean()),), (float(pixels.std()),)
    else:
        mean, std = CIFAR10_MEAN, CIFAR10_STD
    return ImageData(
        name=name,
        label=label,
        classes=tuple(classes),
        train_images=train_images,
        train_labels=pool_labels[train_idx],
        val_images=pool_images[val_idx],
        val_labels=pool_labels[val_idx],
        test_images=test_images,
        test_labels=test_labels,
        mean=mean,
        std=std,
    )


def _jpeg_in_file_order(split: str, path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    path = _jpeg_path(path)
    with np.load(path) as z:
        labels = z[f"{split}_labels"].astype(np.int64)
    return _jpeg_images(path, split, len(labels), None, cache=True), labels


def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(pool images, pool labels, test images, test labels, classes)`` of the digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    pool, test = split_train_val(labels, n_val=DIGITS_TEST_SIZE, seed=DIGITS_TEST_SEED)
    pool = np.sort(pool)
    classes = tuple(str(d) for d in range(10))
    return images[pool], labels[pool], images[np.sort(test)], labels[np.sort(test)], classes


def _random_data(n_train: int | None, n_val: int, seed: int) -> ImageData:
    if not (_is_int(n_val) and 0 <= n_val < 50_000):
        raise ValueError(f"n_val must be an integer in 0..49999, got {n_val!r}")
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        return images, rng.integers(0, 10, size=n).astype(np.int64)

    train = draw(50_000 - n_val if n_train is None else n_train)
    val, test = draw(n_val), draw(10_000)
    # Uniform on {0, ..., 255}/255: mean 1/2, variance (256² − 1)/12 / 255².
    std = math.sqrt((256**2 - 1) / 12) / 255
    return ImageData(
        name="random",
        label=RANDOM_LABEL,
        classes=tuple(str(k) for k in range(10)),
        train_images=train[0],
        train_labels=train[1],
        val_images=val[0],
        val_labels=val[1],
        test_images=test[0],
        test_labels=test[1],
        mean=(0.5,) * 3,
        std=(std,) * 3,
    )


# --- the device-resident loader ----------------------------------------------------


@dataclass(frozen=True, eq=False)
class EpochPlan:
    """Everything random about one epoch, position by position (CPU tensors, length N).

    The k-th sample served is image ``order[k]``, cropped at rows ``dy[k] : dy[k]+H``
    and columns ``dx[k] : dx[k]+W`` of the zero-padded image (torchvision's RandomCrop
    offsets, 0..2·padding; ``padding, padding`` is the image itself), then mirrored
    left-right if ``flip[k]``.
    """

    order: torch.Tensor
    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor


class DeviceLoader:
    """Batches of a uint8 image set that lives, whole, on ``device``.

    airbench's observation: CIFAR-10 is 150 MB as uint8, so it fits on any GPU, and
    then a batch needs no workers, no PIL, no host-to-device copy. Per batch, one gather
    from the padded set does random crop + flip, one fused multiply-add converts uint8 to
    the normalized ``(x/255 − mean)/std``. The same code runs on the CPU.

    ``images``: uint8 ``[N, H, W, C]`` (numpy or torch); ``labels``: integers ``[N]``.
    Yields ``(x, y)``: ``x`` of ``dtype``, ``[B, C, H, W]`` (``channels_last`` memory
    format if asked), ``y`` int64 ``[B]``, both on ``device``.

    ``train=True`` shuffles every epoch and, with ``augment``, applies RandomCrop(H,
    padding) with zero padding and a horizontal flip with probability 1/2 (SPEC §4; He
    et al. 2016: "4 pixels are padded on each side, and a 32×32 crop is randomly sampled
    from the padded image or its horizontal flip"), as torchvision's pair does it.
    ``train=False`` serves the images in order, unchanged.
    Everything random in epoch ``e`` comes from a CPU generator seeded with
    ``(seed, e)`` (:meth:`epoch_plan`), so it is identical on every device and a run
    resumed with :meth:`set_epoch` continues exactly. Each ``iter()`` serves the next
    epoch, starting from 0.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        batch_size: int,
        *,
        device: str | torch.device,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool = True,
        augment: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        padding: int = 4,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ):
        images = _as_uint8_nhwc(images)
        labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels)
        if labels.shape != (len(images),) or labels.is_floating_point() or labels.is_complex():
            raise ValueError(
                f"labels must be integers of shape [{len(images)}] (one per image), got "
                f"shape {list(labels.shape)} dtype {labels.dtype}"
            )
        if not (_is_int(batch_size) and batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not (_is_int(padding) and padding >= 0):
            raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
        if not (_is_int(seed) and seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype}")
        n, height, width, channels = images.shape
        mean_t, std_t = _channel_stats(mean, std, channels)

        self.batch_size = batch_size
        self.train, self.augment = train, augment and train
        self.seed, self.padding = seed, padding
        self.drop_last, self.channels_last, self.dtype = drop_last, channels_last, dtype
        self.device = torch.device(device)
        self.num_samples = n - n % batch_size if drop_last else n
        self._shape = (n, height, width, channels)
        self._next_epoch, self._start_batch = 0, 0

        x = images.to(self.device)
        if self.augment and padding:
            # Pad the whole set once (1.6× the memory of 32×32): then a batch is a single
            # gather, and the zeros are exactly RandomCrop's fill.
            x = torch.nn.functional.pad(x, (0, 0, padding, padding, padding, padding))
        # NHWC storage serves channels_last batches (a permuted view), NCHW the default.
        self._images = x if channels_last else x.permute(0, 3, 1, 2).contiguous()
        self._labels = labels.to(self.device, torch.int64)
        # (x/255 − mean)/std = x · scale + shift: one multiply-add from uint8.
        self._scale = (1 / (255 * std_t)).view(1, -1, 1, 1).to(self.device)
        self._shift = (-mean_t / std_t).view(1, -1, 1, 1).to(self.device)
        if self.augment:
            self._pattern, self._pattern_flipped = self._crop_patterns()

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.num_samples // self.batch_size + (
            0 if self.drop_last else int(self.num_samples % self.batch_size > 0)
        )

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter()`` serves."""
        return self._next_epoch

    def set_epoch(self, epoch: int, batch: int = 0) -> None:
        """Make the next ``iter()`` serve epoch ``epoch`` from batch ``batch`` on (resume)."""
        if not (_is_int(epoch) and epoch >= 0):
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        if not (_is_int(batch) and 0 <= batch <= len(self)):
            raise ValueError(f"batch must be an integer in 0..{len(self)}, got {batch!r}")
        self._next_epoch, self._start_batch = epoch, batch

    def epoch_plan(self, epoch: int) -> EpochPlan:
        """The order, crop offsets and flips of ``epoch``: a function of ``(seed, epoch)`` only.

        Drawn on a CPU ``torch.Generator`` (under a millisecond for 50,000 samples), so
        the plan does not depend on the device or the batch size.
        """
        if not (_is_int(epoch) and epoch >= 0):
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        n, p = self._shape[0], self.padding
        if not self.train:
            order = torch.arange(n)
        else:
            seed = np.random.SeedSequence([self.seed, epoch]).generate_state(1, np.uint64)[0]
            generator = torch.Generator().manual_seed(int(seed))
            order = torch.randperm(n, generator=generator)
        if not self.augment:
            centre = torch.full((n,), p, dtype=torch.int64)
            return EpochPlan(order, centre, centre.clone(), torch.zeros(n, dtype=torch.bool))
        dy, dx = torch.randint(0, 2 * p + 1, (2, n), generator=generator)
        flip = torch.randint(0, 2, (n,), generator=generator).bool()
        return EpochPlan(order, dy, dx, flip)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, start = self._next_epoch, self._start_batch
        self._next_epoch, self._start_batch = epoch + 1, 0
        return self._batches(self.epoch_plan(epoch), start)

    def _batches(self, plan: EpochPlan, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = plan.order.to(self.device)
        if self.augment:
            dy, dx, flip = (t.to(self.device) for t in (plan.dy, plan.dx, plan.flip))
        for b in range(start, len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.num_samples)
            if not self.train:
                x = self._images[lo:hi]
            elif not self.augment:
                x = self._images[order[lo:hi]]
            else:
                x = self._crop_and_flip(order[lo:hi], dy[lo:hi], dx[lo:hi], flip[lo:hi])
            if self.channels_last:
                x = x.permute(0, 3, 1, 2)  # NCHW shape over NHWC memory
            y = self._labels[lo:hi] if not self.train else self._labels[order[lo:hi]]
            yield self._normalize(x), y

    def _crop_patterns(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat offsets of an H×W crop at the padded image's corner, plain and mirrored.

        Laid out as the batch will be ([C, H, W], or [H, W, C] for channels_last), so a
        crop at ``(dy, dx)`` of image ``i`` is ``take(i·s_N + dy·s_H + dx·s_W + pattern)``.
        """
        _, height, width, channels = self._shape
        layout = "NHWC" if self.channels_last else "NCHW"
        stride = dict(zip(layout, self._images.stride()))
        c = torch.arange(channels, device=self.device).view(-1, 1, 1)
        h = torch.arange(height, device=self.device).view(1, -1, 1)
        w = torch.arange(width, device=self.device).view(1, 1, -1)
        rows = c * stride["C"] + h * stride["H"]
        plain, mirrored = rows + w * stride["W"], rows + (width - 1 - w) * stride["W"]
        if self.channels_last:
            plain, mirrored = plain.permute(1, 2, 0), mirrored.permute(1, 2, 0)
        return plain.contiguous(), mirrored.contiguous()

    def _crop_and_flip(
        self, index: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor
    ) -> torch.Tensor:
        # Every sample's crop + flip in one gather: its corner's flat offset plus the
        # (plain or mirrored) pattern. A flipped crop reads its columns right to left.
        s_n, s_h, s_w = (
            self._images.stride(i) for i in ((0, 1, 2) if self.channels_last else (0, 2, 3))
        )
        corner = (index * s_n + dy * s_h + dx * s_w).view(-1, 1, 1, 1)
        pattern = torch.where(flip.view(-1, 1, 1, 1), self._pattern_flipped, self._pattern)
        return self._images.take(corner + pattern)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        out = torch.addcmul(self._shift, x, self._scale)  # uint8 promotes to float32
        return out.to(dtype=self.dtype, memory_format=memory_format)


def _as_uint8_nhwc(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        if not images.flags.writeable:  # e.g. a memory-mapped cache; torch wants writable
            images = images.copy()
        images = torch.from_numpy(images)
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.ndim != 4:
        described = (
            f"shape {list(images.shape)} dtype {images.dtype}"
            if hasattr(images, "shape")
            else type(images).__name__
        )
        raise ValueError(f"images must be uint8 [N, H, W, C] (NHWC), got {described}")
    if len(images) == 0:
        raise ValueError("images must hold at least one image, got N=0")
    return images


def _channel_stats(
    mean: Sequence[float], std: Sequence[float], channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    mean_t = torch.as_tensor(mean, dtype=torch.float64).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float64).flatten()
    if mean_t.numel() != channels or not torch.isfinite(mean_t).all():
        raise ValueError(f"mean must be {channels} finite numbers (one per channel), got {mean}")
    if std_t.numel() != channels or not (torch.isfinite(std_t).all() and (std_t > 0).all()):
        raise ValueError(f"std must be {channels} finite numbers > 0 (one per channel), got {std}")
    return mean_t.float(), std_t.float()


# --- the torchvision baseline ------------------------------------------------------


class _ArrayDataset(torch.utils.data.Dataset):
    """uint8 NHWC arrays served as PIL images through a torchvision transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = self.images[i]
        image = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
        return self.transform(image), int(self.labels[i])


def torchvision_loader(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    train: bool = True,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    augment: bool = True,
    num_workers: int = 2,
    seed: int = 0,
    padding: int = 4,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """The usual pipeline, for comparison with :class:`DeviceLoader`.

    ``RandomCrop(H, padding)``, ``RandomHorizontalFlip()`` (if ``train`` and
    ``augment``), ``ToTensor()``, ``Normalize(mean, std)`` on PIL images in
    ``num_workers`` DataLoader workers; shuffled with a generator seeded by ``seed`` when
    ``train``. Yields float32 ``[B, C, H, W]`` on the CPU and int64 labels. With
    ``num_workers=0`` the augmentation draws from torch's global generator.
    """
    from torchvision import transforms as T

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(
            f"images must be uint8 [N, H, W, C] with C 1 or 3, got shape {images.shape} "
            f"dtype {images.dtype}"
        )
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape [{len(images)}], got {labels.shape}")
    if not (_is_int(num_workers) and num_workers >= 0):
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    _channel_stats(mean, std, images.shape[3])
    steps = []
    if train and augment:
        steps += [T.RandomCrop(images.shape[1], padding=padding), T.RandomHorizontalFlip()]
    steps += [T.ToTensor(), T.Normalize(tuple(mean), tuple(std))]
    return torch.utils.data.DataLoader(
        _ArrayDataset(images, labels, T.Compose(steps)),
        batch_size=batch_size,
        shuffle=train,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def to_tensor(images: np.ndarray, normalize: bool = True, *,
              mean: Sequence[float] = CIFAR10_MEAN,
              std: Sequence[float] = CIFAR10_STD) -> torch.Tensor:
    """uint8 NHWC images to a float32 NCHW tensor, ``(x/255 − mean)/std`` per channel.

    CIFAR-10's statistics by default. For a fixed set of images (a figure, the Hessian
    subset); training batches come from :class:`DeviceLoader`.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    if normalize:
        c = x.shape[1]
        x = (x - torch.tensor(mean).view(1, c, 1, 1)) / torch.tensor(std).view(1, c, 1, 1)
    return x.contiguous()
