"""TrainConfig(compile=True): the training step through torch.compile, same run as eager.

Compiled kernels may round differently from eager ones, so the truth is the eager run to
float32 round-off, not bit for bit; resume is checked against the compiled run itself.
"""

from __future__ import annotations

import pytest
import torch
from train_tools import StopAfterEpochs, digits_config

from samlab.train import Trainer

pytestmark = pytest.mark.slow  # a compilation takes seconds


def weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_a_compiled_run_trains_the_same_network_as_an_eager_run(tmp_path):
    eager = Trainer(digits_config(tmp_path, name="eager", epochs=2), progress=False,
                    report=False)
    compiled = Trainer(digits_config(tmp_path, name="compiled", epochs=2, compile=True),
                       progress=False, report=False)
    eager.fit(), compiled.fit()
    assert compiled.step_net is not compiled.net  # the step really went through compile
    for key, value in weights(eager).items():
        torch.testing.assert_close(weights(compiled)[key], value, rtol=1e-4, atol=1e-5)


def test_a_compiled_run_resumes_where_it_stopped(tmp_path):
    whole = Trainer(digits_config(tmp_path, name="whole", epochs=3, compile=True),
                    progress=False, report=False)
    whole.fit()
    config = digits_config(tmp_path, name="parts", epochs=3, compile=True)
    first = Trainer(config, callbacks=[StopAfterEpochs(1)], progress=False, report=False)
    assert first.fit().status == "interrupted"
    rest = Trainer(config, resume=True, progress=False, report=False)
    assert rest.fit().status == "completed"
    for key, value in weights(whole).items():
        torch.testing.assert_close(weights(rest)[key], value, rtol=1e-4, atol=1e-5)
