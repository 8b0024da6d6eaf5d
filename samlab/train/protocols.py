"""Named protocols: the settings a paper's code trains and measures with, as config fields.

``TrainConfig.from_protocol("zhou2025")`` (``samlab train --protocol zhou2025``) is the
late-phase authors' setup; fields it does not name keep samlab's defaults, and any field
can be overridden on top. docs/training.md#protocols compares the two field by field and
says why they differ.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import validate

PROTOCOLS: dict[str, dict[str, Any]] = {
    # TrainConfig's own defaults for the fields zhou2025 sets: the CIFAR-10 recipe of the
    # SAM-family papers (docs/training.md#the-cifar-10-recipe).
    "samlab": {
        "n_val": None,
        "epochs": 200,
        "lr": 0.1,
        "batch_size": 128,
        "weight_decay": 5e-4,
        "momentum": 0.9,
        "label_smoothing": 0.0,
        "schedule": "cosine",
        "step_epochs": [],
        "step_gamma": 0.1,
        "method": "sgd",
        "rho": 0.05,
        "switch_epoch": None,
        "end_epoch": None,
        "reset_on_switch": False,
        "sharpness_subset": 5000,
        "sharpness_subset_order": "random",
        "sharpness_k": 2,
        "sharpness_bn_mode": "eval",
    },
    # Zhou et al., "Sharpness-aware minimization efficiently selects flatter minima late in
    # training" (ICLR 2025): the defaults of their ERM_to_SAM.py and flatness.py.
    "zhou2025": {
        "n_val": 0,                  # they train on all 50,000 training images
        "epochs": 160,
        "lr": 0.01,
        "batch_size": 128,
        "weight_decay": 1e-4,
        "momentum": 0.9,
        "label_smoothing": 0.1,
        "schedule": "step",
        "step_epochs": [80, 160],    # their milestones; 160 only acts when epochs > 160
        "step_gamma": 0.1,
        "method": "sam",             # normalized SAM ...
        "rho": 2.0,
        "switch_epoch": 150,         # ... for epochs 150..159
        "end_epoch": None,           # their end_SAM=160 is inclusive: SAM to the end
        "reset_on_switch": True,     # SAM is a second optimizer, with its own momentum
        "sharpness_subset": 5000,
        "sharpness_subset_order": "first",  # Subset(trainset, range(5000))
        "sharpness_k": 2,
        "sharpness_bn_mode": "train",
    },
}


def protocol(name: str) -> dict[str, Any]:
    """The config fields of protocol ``name`` (a copy: change it freely)."""
    return copy.deepcopy(PROTOCOLS[validate.choice("protocol", name, PROTOCOLS)])
