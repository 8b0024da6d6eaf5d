"""load_cifar10 reads torchvision's CIFAR-10 files, checks their md5s, and says how to fix them.

The files here are written in CIFAR-10's own format (see fake_cifar.py) with a few
images each, so their md5s are not torchvision's: the tests pass their own md5s
(``md5=``), except where they check that torchvision's are the default.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
from fake_cifar import CLASSES, TRAIN_FILES, write_fake_cifar10
from torchvision.datasets import CIFAR10

from samlab import data
from samlab.data import CIFAR10_FILES, cifar10_md5, load_cifar10, load_dataset


@pytest.fixture
def fake(tmp_path):
    return write_fake_cifar10(tmp_path, per_batch=20)


@pytest.fixture
def offline(monkeypatch):
    """No network: every URL open and socket connection fails as it does offline."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def chw_row_to_hwc(row: np.ndarray) -> np.ndarray:
    """The format's definition, pixel by pixel: value (c, y, x) is at c·1024 + y·32 + x."""
    image = np.empty((32, 32, 3), dtype=np.uint8)
    for c in range(3):
        for y in range(32):
            for x in range(32):
                image[y, x, c] = row[c * 1024 + y * 32 + x]
    return image


def test_default_md5s_are_the_ones_torchvision_ships():
    shipped = {name: md5 for name, md5 in CIFAR10.train_list + CIFAR10.test_list}
    shipped[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
    assert cifar10_md5() == shipped
    assert set(cifar10_md5()) == set(CIFAR10_FILES)


def test_files_with_matching_md5s_load_and_round_trip_pixels_and_labels(fake):
    arrays = load_cifar10(fake.root, md5=fake.md5)

    assert arrays.train_images.shape == (100, 32, 32, 3)
    assert arrays.test_images.shape == (20, 32, 32, 3)
    assert arrays.train_images.dtype == arrays.test_images.dtype == np.uint8
    assert arrays.train_labels.dtype == arrays.test_labels.dtype == np.int64
    expected_train = np.concatenate([fake.rows[name] for name in TRAIN_FILES])
    assert np.array_equal(
        arrays.train_images.transpose(0, 3, 1, 2).reshape(100, 3072), expected_train
    )
    assert np.array_equal(
        arrays.test_images.transpose(0, 3, 1, 2).reshape(20, 3072), fake.rows["test_batch"]
    )
    assert arrays.train_labels.tolist() == sum((fake.labels[n] for n in TRAIN_FILES), [])
    assert arrays.test_labels.tolist() == fake.labels["test_batch"]
    assert arrays.classes == CLASSES


def test_a_row_becomes_the_image_whose_channel_planes_it_lists(fake):
    arrays = load_cifar10(fake.root, md5=fake.md5)

    for i in (0, 7, 19):
        assert np.array_equal(arrays.test_images[i], chw_row_to_hwc(fake.rows["test_batch"][i]))
    assert np.array_equal(arrays.train_images[20], chw_row_to_hwc(fake.rows["data_batch_2"][0]))


def test_files_that_are_not_torchvisions_are_reported_corrupt_by_default(fake):
    with pytest.raises(RuntimeError, match="corrupt") as error:
        load_cifar10(fake.root)
    assert str(fake.folder / "data_batch_1") in str(error.value)


def test_a_corrupt_byte_is_reported_with_the_file_and_the_fix(fake):
    path = fake.folder / "data_batch_3"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))

    with pytest.raises(RuntimeError) as error:
        load_cifar10(fake.root, md5=fake.md5)

    message = str(error.value)
    assert f"{path}: corrupt" in message
    assert fake.md5["data_batch_3"] in message  # the md5 it should have
    for fix in ("delete the corrupt file", "download=True", "samlab doctor"):
        assert fix in message
    assert str(fake.folder / "data_batch_1") not in message  # intact files are not blamed


def test_a_missing_file_is_reported_with_its_path_and_the_fix(fake):
    (fake.folder / "test_batch").unlink()

    with pytest.raises(FileNotFoundError) as error:
        load_cifar10(fake.root, md5=fake.md5)

    message = str(error.value)
    assert f"{fake.folder / 'test_batch'}: missing" in message
    assert "load_cifar10(root=" in message and "download=True" in message
    assert CIFAR10.url in message and "samlab doctor" in message


def test_an_empty_data_dir_names_every_file(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_cifar10(tmp_path)
    for name in CIFAR10_FILES:
        assert str(tmp_path / "cifar-10-batches-py" / name) in str(error.value)


def test_the_default_root_is_samlab_data(fake, monkeypatch):
    monkeypatch.setenv("SAMLAB_DATA", str(fake.root))
    assert len(load_cifar10(md5=fake.md5).train_labels) == 100


def test_download_offline_says_which_url_failed_and_how_to_place_the_files(tmp_path, offline):
    with pytest.raises(ConnectionError) as error:
        load_cifar10(tmp_path, download=True)

    message = str(error.value)
    assert CIFAR10.url in message
    assert str(tmp_path / CIFAR10.filename) in message  # where to put the archive by hand
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert isinstance(error.value.__cause__, urllib.error.URLError)


def test_download_does_not_touch_the_network_when_the_files_are_intact(fake, offline):
    arrays = load_cifar10(fake.root, download=True, md5=fake.md5)
    assert len(arrays.test_labels) == 20


def test_an_md5_mapping_without_every_file_is_refused(fake):
    partial = {k: v for k, v in fake.md5.items() if k != "batches.meta"}
    with pytest.raises(ValueError, match=r"md5 must give a checksum .*batches\.meta"):
        load_cifar10(fake.root, md5=partial)


def test_load_dataset_cifar10_splits_the_training_batches_and_keeps_the_test_batch(
    fake, monkeypatch
):
    monkeypatch.setattr(data.cifar10, "cifar10_md5", lambda: fake.md5)

    d = load_dataset("cifar10", path=fake.root, n_val=10)

    assert (len(d.train_labels), len(d.val_labels), len(d.test_labels)) == (90, 10, 20)
    assert d.label == "CIFAR-10" and d.classes == CLASSES and d.num_classes == 10
    assert d.mean == data.CIFAR10_MEAN and d.std == data.CIFAR10_STD
    arrays = load_cifar10(fake.root, md5=fake.md5)
    assert np.array_equal(d.test_images, arrays.test_images)
    pool = np.concatenate([d.train_images, d.val_images]).reshape(100, -1)
    assert sorted(map(bytes, pool)) == sorted(map(bytes, arrays.train_images.reshape(100, -1)))


def test_an_offline_download_points_at_the_jpeg_copy_samlab_can_see(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    (tmp_path / "cifar10-jpeg.npz").write_bytes(b"")
    monkeypatch.setenv("SAMLAB_DATA", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError) as error:
        load_cifar10(tmp_path / "cifar", download=True)
    assert (f"Or train on the JPEG-recompressed copy samlab found at "
            f"{tmp_path / 'cifar10-jpeg.npz'}: --dataset cifar10-jpeg") in str(error.value)


def test_a_data_directory_that_is_a_file_is_named_as_such(tmp_path):
    (tmp_path / "data").write_text("")
    with pytest.raises(NotADirectoryError, match=r"data is a file, not a directory"):
        load_cifar10(tmp_path / "data", download=True)
