"""samlab.colab.setup: what each notebook's first cell calls on Colab after installing."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from samlab import colab


@pytest.fixture
def fake_colab(monkeypatch):
    """A stand-in for google.colab that records the widget manager being turned on."""
    calls = []
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("on"))
    package = types.ModuleType("google")
    module = types.ModuleType("google.colab")
    module.output = output
    package.colab = module
    monkeypatch.setitem(sys.modules, "google", package)
    monkeypatch.setitem(sys.modules, "google.colab", module)
    return calls


def test_setup_turns_colabs_widget_manager_on(fake_colab, capsys):
    colab.setup()
    assert fake_colab == ["on"]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("cuda", [False, True])
def test_with_gpu_it_says_how_to_get_one_only_when_there_is_none(fake_colab, capsys,
                                                                  monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    colab.setup(gpu=True)
    printed = capsys.readouterr().out
    assert fake_colab == ["on"]
    assert ("Change runtime type" in printed) is not cuda


def test_off_colab_it_says_it_is_for_colab(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # what import finds off Colab
    with pytest.raises(RuntimeError, match=r"samlab.colab.setup\(\) is for Colab: "
                                           "google.colab cannot be imported here"):
        colab.setup()
