"""DeviceLoader: the whole set on the device, torchvision's crop + flip done there in batches.

The references (augment_truth.py) do not use samlab: crops come from
``torchvision.transforms.functional`` and the normalization is the formula in float64.
Labels are set to the image's index, so ``y`` says which image each sample is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from augment_truth import (
    MEAN,
    NORMALIZE_TOL,
    STD,
    as_uint8,
    images_of,
    normalized,
    recover_offsets,
    reference_crop,
)

from samlab.data import DeviceLoader

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def loader(images, batch_size=16, mean=MEAN, std=STD, **kwargs) -> DeviceLoader:
    """A DeviceLoader whose labels are the image indices."""
    kwargs.setdefault("device", "cpu")
    c = images.shape[3]
    return DeviceLoader(
        images, np.arange(len(images)), batch_size, mean=mean[:c], std=std[:c], **kwargs
    )


def epoch(dl: DeviceLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*dl)
    return torch.cat(xs).cpu(), torch.cat(ys).cpu()


# --- shapes, normalization, order --------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("train", [True, False])
def test_batches_are_float_nchw_with_int64_labels_on_the_device(device, train):
    dl = loader(images_of(40), batch_size=16, device=device, train=train)
    batches = list(dl)

    assert len(dl) == len(batches) == 3
    assert [len(y) for _, y in batches] == [16, 16, 8]
    for x, y in batches:
        assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
        assert y.dtype == torch.int64 and x.device.type == y.device.type == device


def test_eval_mode_serves_every_image_in_order_normalized_exactly():
    images = images_of(40)
    x, y = epoch(loader(images, train=False))

    assert y.tolist() == list(range(40))
    expected = normalized(torch.from_numpy(images).permute(0, 3, 1, 2))
    torch.testing.assert_close(x.double(), expected, **NORMALIZE_TOL)


def test_eval_mode_is_the_same_every_epoch():
    dl = loader(images_of(20), train=False, seed=3)
    first, second = epoch(dl), epoch(dl)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_every_sample_appears_exactly_once_per_epoch():
    dl = loader(images_of(45), batch_size=16)
    for _ in range(3):
        _, y = epoch(dl)
        assert sorted(y.tolist()) == list(range(45))


def test_drop_last_drops_the_partial_batch():
    dl = loader(images_of(45), batch_size=16, drop_last=True)
    assert len(dl) == 2 and dl.num_samples == 32
    _, y = epoch(dl)
    assert len(y) == 32 and len(set(y.tolist())) == 32


# --- the augmentation is torchvision's ---------------------------------------------


@pytest.mark.parametrize(
    "height, width, channels, padding",
    [(32, 32, 3, 4), (8, 8, 1, 2), (6, 10, 3, 3)],
    ids=["cifar", "digits-like", "non-square"],
)
def test_each_sample_is_the_zero_padded_crop_at_its_offset_flipped_when_drawn(
    height, width, channels, padding
):
    images = images_of(30, height, width, channels)
    dl = loader(images, batch_size=8, padding=padding, seed=1)
    plan = dl.epoch_plan(0)
    x, y = epoch(dl)

    assert torch.equal(y, plan.order)
    for k in range(len(y)):
        i, dy, dx, flip = (int(plan.order[k]), int(plan.dy[k]), int(plan.dx[k]), bool(plan.flip[k]))
        expected = normalized(reference_crop(images[i], dy, dx, flip, padding)[None])
        torch.testing.assert_close(x[k : k + 1].double(), expected, **NORMALIZE_TOL)


def test_offsets_and_flips_read_back_from_the_pixels_are_the_plans():
    images = images_of(24)
    dl = loader(images, batch_size=10, seed=4)
    for e in range(2):
        plan = dl.epoch_plan(e)
        x, y = epoch(dl)
        crops = as_uint8(x)
        for k in range(len(y)):
            found = recover_offsets(images[int(y[k])], crops[k])
            assert found == [(int(plan.dy[k]), int(plan.dx[k]), bool(plan.flip[k]))]


def test_offsets_are_uniform_over_0_to_8_and_flips_have_rate_one_half():
    dl = loader(images_of(2000, 4, 4, 1), padding=4)  # the plan depends on N and padding only
    plans = [dl.epoch_plan(e) for e in range(5)]
    dy = torch.cat([p.dy for p in plans])
    dx = torch.cat([p.dx for p in plans])
    flip = torch.cat([p.flip for p in plans]).double()
    n = len(dy)  # 10,000 draws

    for offsets in (dy, dx):
        counts = torch.bincount(offsets, minlength=9)
        assert len(counts) == 9  # nothing outside 0..8
        sigma = (n * (1 / 9) * (8 / 9)) ** 0.5
        assert (counts - n / 9).abs().max() < 5 * sigma, counts
    assert len(torch.unique(dy * 9 + dx)) == 81  # every joint offset occurs
    assert abs(flip.mean().item() - 0.5) < 5 * (0.25 / n) ** 0.5
    # flips are independent of the offsets: rate ~1/2 at the corners too
    corner = (dy == 0) | (dy == 8)
    assert abs(flip[corner].mean().item() - 0.5) < 5 * (0.25 / corner.sum().item()) ** 0.5


def test_train_without_augment_shuffles_but_leaves_images_intact():
    images = images_of(40)
    x, y = epoch(loader(images, augment=False, seed=2))

    assert y.tolist() != list(range(40)) and sorted(y.tolist()) == list(range(40))
    expected = normalized(torch.from_numpy(images[y.numpy()]).permute(0, 3, 1, 2))
    torch.testing.assert_close(x.double(), expected, **NORMALIZE_TOL)


# --- reproducibility ---------------------------------------------------------------


def test_same_seed_and_epoch_give_identical_batches():
    images = images_of(40)
    a, b = loader(images, seed=7), loader(images, seed=7)
    for _ in range(2):
        (xa, ya), (xb, yb) = epoch(a), epoch(b)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_different_epochs_and_different_seeds_differ():
    images = images_of(40)
    dl = loader(images, seed=7)
    first, second = epoch(dl), epoch(dl)
    other_seed = epoch(loader(images, seed=8))

    assert not torch.equal(first[1], second[1])
    assert not torch.equal(first[1], other_seed[1])
    assert not torch.equal(dl.epoch_plan(0).dx, dl.epoch_plan(1).dx)


def test_set_epoch_resumes_exactly_also_in_the_middle_of_an_epoch():
    images = images_of(50)
    run = loader(images, batch_size=8, seed=5)
    epochs = [list(run) for _ in range(3)]
    assert run.epoch == 3

    resumed = loader(images, batch_size=8, seed=5)
    resumed.set_epoch(2)
    for (xa, ya), (xb, yb) in zip(epochs[2], resumed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)

    resumed.set_epoch(1, batch=4)
    tail = list(resumed)
    assert len(tail) == len(epochs[1]) - 4
    for (xa, ya), (xb, yb) in zip(epochs[1][4:], tail, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert resumed.epoch == 2  # and then it goes on with the next epoch from its start


def test_the_sample_sequence_does_not_depend_on_batch_size():
    images = images_of(50)
    x7, y7 = epoch(loader(images, batch_size=7, seed=9))
    x16, y16 = epoch(loader(images, batch_size=16, seed=9))
    assert torch.equal(y7, y16) and torch.equal(x7, x16)


# --- layouts and dtypes --------------------------------------------------------------


def test_channels_last_gives_the_same_values_in_channels_last_memory():
    images = images_of(40)
    x, y = epoch(loader(images, seed=3))
    dl = loader(images, seed=3, channels_last=True)
    batch, _ = next(iter(dl))
    assert batch.is_contiguous(memory_format=torch.channels_last)
    dl.set_epoch(0)
    x_cl, y_cl = epoch(dl)
    assert torch.equal(y, y_cl) and torch.equal(x, x_cl)


def test_a_lower_precision_dtype_rounds_the_float32_values():
    images = images_of(20)
    x, _ = epoch(loader(images, seed=3))
    x_bf16, _ = epoch(loader(images, seed=3, dtype=torch.bfloat16))
    assert x_bf16.dtype == torch.bfloat16
    assert torch.equal(x_bf16, x.to(torch.bfloat16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_serves_the_same_batches_as_the_cpu():
    images = images_of(40)
    x_cpu, y_cpu = epoch(loader(images, seed=11))
    x_gpu, y_gpu = epoch(loader(images, seed=11, device="cuda"))
    assert torch.equal(y_cpu, y_gpu)
    torch.testing.assert_close(x_cpu, x_gpu, rtol=0, atol=1e-6)


# --- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(images=np.zeros((4, 8, 8, 3), np.float32)), "images must be uint8 [N, H, W, C]"),
        (dict(images=np.zeros((4, 8, 8), np.uint8)), "images must be uint8 [N, H, W, C]"),
        (dict(labels=np.arange(3)), "labels must be integers of shape [4]"),
        (dict(labels=np.zeros(4)), "labels must be integers of shape [4]"),
        (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        (dict(padding=-1), "padding must be an integer >= 0, got -1"),
        (dict(seed=-2), "seed must be an integer >= 0, got -2"),
        (dict(mean=(0.5, 0.5)), "mean must be 3 finite numbers (one per channel)"),
        (dict(std=(0.2, 0.0, 0.2)), "std must be 3 finite numbers > 0"),
        (dict(dtype=torch.int32), "dtype must be a floating-point torch dtype"),
    ],
)
def test_bad_arguments_are_named_with_their_value(change, message):
    kwargs = dict(
        images=images_of(4, 8, 8),
        labels=np.arange(4),
        batch_size=2,
        device="cpu",
        mean=MEAN,
        std=STD,
    )
    kwargs.update(change)
    images, labels, batch_size = (kwargs.pop(k) for k in ("images", "labels", "batch_size"))
    with pytest.raises(ValueError) as error:
        DeviceLoader(images, labels, batch_size, **kwargs)
    assert message in str(error.value)


def test_set_epoch_refuses_a_batch_past_the_end():
    dl = loader(images_of(10), batch_size=4)
    with pytest.raises(ValueError, match=r"batch must be an integer in 0\.\.3, got 4"):
        dl.set_epoch(0, batch=4)
    with pytest.raises(ValueError, match="epoch must be an integer >= 0, got -1"):
        dl.set_epoch(-1)
