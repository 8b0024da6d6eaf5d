"""CIFAR-10, the JPEG copy (``cifar10-jpeg.npz``): real images for development, not CIFAR-10.

The file holds all 60,000 CIFAR-10 images re-encoded as JPEG, so the pixels are **not**
the canonical ones: anything measured on it carries :data:`JPEG_LABEL`. It is found at
``data_dir()/cifar10-jpeg.npz`` (``SAMLAB_DATA`` moves the data directory) or wherever
``path=`` points. Decoded once per split and cached as ``.npy`` in ``data_dir()/cache``.
"""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .. import validate
from ..files import atomic_write
from ..paths import JPEG_NAME, data_dir

JPEG_LABEL = "JPEG-recompressed CIFAR-10"


def find_cifar10_jpeg() -> Path | None:
    """``data_dir()/cifar10-jpeg.npz`` if it is there (``SAMLAB_DATA`` moves ``data_dir()``)."""
    candidate = data_dir() / JPEG_NAME
    return candidate if candidate.is_file() else None


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
    validate.choice("split", split, ("train", "test"))
    seed = validate.integer("seed", seed, low=0)
    path = jpeg_path(path)
    labels = jpeg_labels(path, split)
    total = len(labels)
    if n is None:
        n = total
    n = validate.integer("n", n, low=1, high=total)
    order = np.random.default_rng(seed).permutation(total)[:n]
    return jpeg_images(path, split, total, order, cache), labels[order]


def jpeg_path(path: str | Path | None) -> Path:
    """The npz file: ``path`` if given, else :func:`find_cifar10_jpeg`; a clear error if none."""
    found = Path(path) if path is not None else find_cifar10_jpeg()
    if found is None or not found.is_file():
        where = (f"path={str(path)!r} is not a file" if path is not None
                 else f"looked for {data_dir() / JPEG_NAME}; put the file there, or set "
                      "SAMLAB_DATA to the folder that holds it")
        raise FileNotFoundError(f"{JPEG_NAME} not found ({where}); or pass path= to the file")
    return found


def jpeg_images(
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

    jpeg, offsets, _ = _read_split(path, split, with_jpeg=True)
    images = np.empty((len(indices), 32, 32, 3), dtype=np.uint8)
    for j, i in enumerate(indices):
        blob = jpeg[offsets[i] : offsets[i + 1]].tobytes()
        try:
            image = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
        except Exception as err:  # PIL's errors for a damaged image vary
            raise _not_valid(path, f"{split} image {i} does not decode ({err})") from None
        if image.shape != (32, 32, 3):
            raise _not_valid(path, f"{split} image {i} is {image.shape}, not 32x32 RGB")
        images[j] = image
    return images


def jpeg_labels(path: Path, split: str) -> np.ndarray:
    """The labels of ``split`` in the npz at ``path``, after checking the split's arrays."""
    return _read_split(path, split, with_jpeg=False)[2]


def _not_valid(path: Path, why: str) -> ValueError:
    return ValueError(f"{path} is not a valid {JPEG_NAME}: {why}. The way out: fetch the "
                      "file again, or point SAMLAB_DATA (or path=) at a good copy")


def _read_split(path: Path, split: str, *, with_jpeg: bool
                ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``(jpeg bytes, offsets, labels)`` of ``split``, checked against each other, or a
    ValueError naming the file and what is wrong with it. Without ``with_jpeg`` the bytes
    (most of the file) are not read: ``None``."""
    keys = [f"{split}_jpeg", f"{split}_offsets", f"{split}_labels"]
    try:
        with np.load(path, allow_pickle=False) as z:
            lacks = [k for k in keys if k not in z.files]
            if lacks:
                raise _not_valid(path, f"it lacks {', '.join(lacks)}")
            jpeg = z[keys[0]] if with_jpeg else None
            offsets, labels = z[keys[1]], z[keys[2]]
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise _not_valid(path, "not an npz archive of arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise _not_valid(path, f"not a readable npz archive ({type(err).__name__}: {err})") \
            from None
    size = len(jpeg) if jpeg is not None and jpeg.ndim == 1 else None
    if (labels.ndim != 1 or offsets.shape != (len(labels) + 1,)
            or not np.issubdtype(offsets.dtype, np.integer)
            or offsets[0] != 0 or np.any(np.diff(offsets) <= 0)
            or (jpeg is not None and offsets[-1] != size)):
        raise _not_valid(path, f"its {split} arrays do not fit together ({labels.size} labels, "
                               f"{offsets.size} offsets"
                               + (f", {jpeg.size} bytes of JPEG)" if jpeg is not None else ")"))
    return jpeg, offsets, labels.astype(np.int64)


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
    """Write ``array`` to ``file`` atomically, or warn (a cache is worth no failure)."""
    try:
        atomic_write(file, lambda f: np.save(f, array))
    except OSError as error:
        warnings.warn(f"could not write the cache {file}: {error}", stacklevel=3)
