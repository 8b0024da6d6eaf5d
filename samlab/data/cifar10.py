"""CIFAR-10, canonical: torchvision's files, checked against torchvision's md5s.

The files live in ``data_dir()/cifar-10-batches-py`` (torchvision's layout,
:mod:`samlab.paths`); :func:`load_cifar10` reads them into uint8 NHWC arrays, and
downloads them through torchvision when asked.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..paths import (
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
CIFAR10_LABEL = "CIFAR-10"


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
        try:
            _download_cifar10(root)
        except ConnectionError as offline:
            if any(what != "missing" for what in trouble.values()):
                # A corrupt file is the news; that the fix could not be fetched comes second.
                error = _cifar10_files_error(root, trouble)
                raise type(error)(f"{error}\nThe download that would replace them failed: "
                                  f"{offline.__cause__ or offline}") from offline
            raise
        trouble = problems()
    if trouble:
        raise _cifar10_files_error(root, trouble)

    train = [_read_cifar_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    test_images, test_labels = _read_cifar_batch(folder / CIFAR10_TEST_FILE)
    meta = _unpickle(folder / CIFAR10_META_FILE)
    classes = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in meta["label_names"])
    return CifarArrays(
        train_images=np.concatenate([images for images, _ in train]),
        train_labels=np.concatenate([labels for _, labels in train]),
        test_images=test_images,
        test_labels=test_labels,
        classes=classes,
    )


def _unpickle(path: Path) -> dict:
    """One of CIFAR-10's pickles, or a RuntimeError naming the file: one that passes its
    md5 check can still be damaged (a truncated file whose md5 was taken after the cut)."""
    try:
        with open(path, "rb") as f:
            # latin1, as torchvision: the files are Python 2 pickles of numpy arrays.
            entry = pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError) as err:
        raise RuntimeError(f"{path} does not unpickle ({type(err).__name__}: {err}): it is "
                           "damaged. The way out: delete it and download CIFAR-10 again "
                           "(download=True)") from None
    if not isinstance(entry, dict):
        raise RuntimeError(f"{path} is not a CIFAR-10 file: it holds a "
                           f"{type(entry).__name__}, not a dict")
    return _str_keys(entry)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch: ``data`` is uint8 ``[N, 3072]``, each row a CHW image, row-major."""
    entry = _unpickle(path)
    if not {"data", "labels"} <= entry.keys():
        raise RuntimeError(f"{path} is not a CIFAR-10 batch: it holds {sorted(entry)}, not "
                           "data and labels")
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
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} is a file, not a directory: CIFAR-10 goes into a "
                                 "folder (the data directory: SAMLAB_DATA, or path=)")
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
            f"{', '.join(CIFAR10_FILES)}.{_jpeg_hint()}"
        ) from error


def _jpeg_hint() -> str:
    """Where samlab can see the JPEG copy: say that it can train on it instead."""
    from .jpeg import find_cifar10_jpeg

    found = find_cifar10_jpeg()
    return ("" if found is None else
            f"\nOr train on the JPEG-recompressed copy samlab found at {found}: "
            "--dataset cifar10-jpeg (TrainConfig(dataset='cifar10-jpeg'); its numbers are "
            "labelled as such).")
