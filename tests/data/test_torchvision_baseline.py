"""torchvision_loader, the benchmark's baseline, does what DeviceLoader does, the usual way."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from augment_truth import MEAN, NORMALIZE_TOL, STD, as_uint8, images_of, recover_offsets

from benchmarks.baselines import torchvision_loader
from samlab.data import DeviceLoader


def everything(dl) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*dl)
    return torch.cat(xs), torch.cat(ys)


def test_in_eval_mode_it_serves_what_the_device_loader_serves():
    images = images_of(40)
    x_tv, y_tv = everything(
        torchvision_loader(
            images, np.arange(40), 16, train=False, mean=MEAN, std=STD, num_workers=0
        )
    )
    x_dev, y_dev = everything(
        DeviceLoader(images, np.arange(40), 16, device="cpu", mean=MEAN, std=STD, train=False)
    )

    assert torch.equal(y_tv, y_dev)
    torch.testing.assert_close(x_tv, x_dev, **NORMALIZE_TOL)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_in_training_every_sample_is_a_padded_crop_of_its_image_once_per_epoch(num_workers):
    images = images_of(24)
    dl = torchvision_loader(
        images, np.arange(24), 10, True, mean=MEAN, std=STD, num_workers=num_workers, seed=1
    )
    x, y = everything(dl)

    assert x.shape == (24, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert sorted(y.tolist()) == list(range(24)) and y.tolist() != list(range(24))
    crops = as_uint8(x)
    for k in range(len(y)):
        assert len(recover_offsets(images[int(y[k])], crops[k])) == 1


def test_grayscale_images_work_too():
    images = images_of(6, 8, 8, 1)
    x, _ = everything(
        torchvision_loader(
            images, np.arange(6), 3, True, mean=(0.5,), std=(0.25,), num_workers=0, padding=2
        )
    )
    assert x.shape == (6, 1, 8, 8)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(images=np.zeros((4, 8, 8, 3))), "images must be uint8 [N, H, W, C] with C 1 or 3"),
        (dict(labels=np.arange(3)), "labels must have shape [4]"),
        (dict(num_workers=-1), "num_workers must be an integer >= 0, got -1"),
        (dict(mean=(0.5,)), "mean must be 3 finite numbers"),
    ],
)
def test_bad_arguments_are_named_with_their_value(kwargs, message):
    args = dict(images=images_of(4, 8, 8), labels=np.arange(4), batch_size=2, mean=MEAN, std=STD)
    args.update(kwargs)
    with pytest.raises(ValueError) as error:
        torchvision_loader(**args)
    assert message in str(error.value)
