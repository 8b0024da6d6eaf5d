"""Small files in CIFAR-10's own on-disk format, for the loader tests.

CIFAR-10's "python version" is seven pickles in ``cifar-10-batches-py/``: five training
batches and ``test_batch``, each ``{b"data": uint8 [N, 3072], b"labels": [N], ...}``
where a row is one image as 1024 red, 1024 green, 1024 blue values, each plane row-major
(CHW); and ``batches.meta`` with ``b"label_names"``. These have a few images per batch.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass
class FakeCifar:
    root: Path  # the folder that holds cifar-10-batches-py/
    rows: dict[str, np.ndarray]  # file name -> uint8 [N, 3072] as written
    labels: dict[str, list[int]]
    md5: dict[str, str]  # file name -> md5 of the file as written

    @property
    def folder(self) -> Path:
        return self.root / FOLDER


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_fake_cifar10(root: Path, per_batch: int = 20, seed: int = 0) -> FakeCifar:
    rng = np.random.default_rng(seed)
    folder = root / FOLDER
    folder.mkdir(parents=True)
    rows, labels = {}, {}
    for name in (*TRAIN_FILES, "test_batch"):
        rows[name] = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels[name] = [int(k) for k in rng.integers(0, 10, size=per_batch)]
        entry = {
            b"batch_label": name.encode(),
            b"labels": labels[name],
            b"data": rows[name],
            b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {
        b"label_names": [c.encode() for c in CLASSES],
        b"num_cases_per_batch": per_batch,
        b"num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    md5 = {path.name: md5_of(path) for path in folder.iterdir()}
    return FakeCifar(root, rows, labels, md5)
