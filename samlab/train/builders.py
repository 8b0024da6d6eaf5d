"""What a config builds: the data, the model, the optimizer and the learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .. import models
from ..data import ImageData, load_dataset
from ..optim import SAM
from .config import TrainConfig


def load_data(config: TrainConfig) -> ImageData:
    """``config.dataset`` with its splits (CIFAR-10 is downloaded if it is not there)."""
    return load_dataset(config.dataset, n_train=config.n_train, n_val=config.n_val,
                        n_test=config.n_test, split_seed=config.seed,
                        download=config.dataset == "cifar10", label_noise=config.label_noise,
                        label_noise_seed=config.label_noise_seed)


def build_model(config: TrainConfig, data: ImageData) -> nn.Module:
    h, w, c = data.image_shape
    if config.model == "resnet20":
        if c != 3:
            raise ValueError(f"model 'resnet20' needs 3-channel images; dataset "
                             f"{config.dataset!r} has {c}: use model 'small_cnn' or 'mlp'")
        return models.resnet20(num_classes=data.num_classes)
    if config.model == "small_cnn":
        return models.small_cnn(num_classes=data.num_classes, in_channels=c)
    return models.mlp(in_features=c * h * w, hidden=64, num_classes=data.num_classes)


def build_optimizer(config: TrainConfig, net: nn.Module) -> SAM:
    """``config.method`` around SGD with momentum; ``sgd`` is SGD itself (no ascent)."""
    return SAM(net.parameters(), torch.optim.SGD, method=config.method, rho=config.rho,
               switch_epoch=config.switch_epoch, end_epoch=config.end_epoch,
               reset_on_switch=config.reset_on_switch,
               model=net, lr=config.lr, momentum=config.momentum,
               weight_decay=config.weight_decay, nesterov=config.nesterov)


def lr_lambda(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning-rate factor after ``step`` optimizer steps."""
    total = config.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if config.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        if config.schedule == "step":
            epoch = step // steps_per_epoch
            return config.step_gamma ** sum(epoch >= e for e in config.step_epochs)
        return 1.0

    return factor
