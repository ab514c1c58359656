"""The StyleGAN2-ADA pickle reader never imports or runs code from the file: an allow-list of globals, module_src
never executed, opt-in required. Malicious pickles are built in the tests, and their side effects are checked."""

from __future__ import annotations

import io
import os
import pickle
import sys
import types
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from stylegan_helpers import PICKLE, official_io
from zoo_stylegan.model import StyleGANModel
from zoo_stylegan.pickle_loader import (
    PersistentObject,
    PickleNotAllowedError,
    RestrictedUnpickler,
    UnsafePickleError,
    load_snapshot,
)

import zoo
from zoo_core.errors import WeightsError


class _RunsCommand:
    """Unpickling this calls os.system(command): what a malicious snapshot would do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _CallsEval:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


def _touch(path) -> str:
    return f"touch {path}"


def test_a_pickle_calling_os_system_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = {"G_ema": _RunsCommand(_touch(marker)), "G": None, "D": None}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafePickleError, match=r"(posix|os)\.system") as err:
        load_snapshot(path, allow_pickle=True)
    assert "refused" in str(err.value)
    assert not marker.exists()


def test_a_malicious_object_nested_in_a_real_snapshot_is_refused(tmp_path):
    # The official snapshot with one more entry whose unpickling would evaluate code.
    snapshot = load_snapshot(PICKLE, allow_pickle=True)
    marker = tmp_path / "pwned"
    extra = _CallsEval(f"open({str(marker)!r}, 'w').write('x')")
    path = tmp_path / "evil-snapshot.pkl"
    path.write_bytes(
        pickle.dumps({"training_set_kwargs": snapshot["training_set_kwargs"], "augment_pipe": extra})
    )
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        load_snapshot(path, allow_pickle=True)
    assert not marker.exists()


def test_module_src_of_a_persistent_object_is_never_executed(tmp_path, monkeypatch):
    """A pickle with the official persistence structure whose module_src would create a file if executed."""
    marker = tmp_path / "module_src_ran"
    fake = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called: only its name goes into the pickle
        raise AssertionError

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", fake)

    class Persistent:
        def __init__(self, meta):
            self.meta = meta

        def __reduce__(self):
            return (_reconstruct_persistent_obj, (self.meta,))

    weight = torch.nn.Parameter(torch.arange(6.0).reshape(2, 3))
    state = {
        "training": False,
        "_parameters": OrderedDict(weight=weight, bias=None),
        "_buffers": OrderedDict(),
        "_modules": OrderedDict(),
        "_init_args": (),
        "_init_kwargs": {"z_dim": 3},
        "gain": np.float64(0.25),
    }
    meta = {
        "type": "class",
        "version": 6,
        "module_src": f"open({str(marker)!r}, 'w').write('ran')\n",
        "class_name": "Generator",
        "state": state,
    }
    path = tmp_path / "persistent.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Persistent(meta)}, protocol=4))
    monkeypatch.delitem(sys.modules, "torch_utils.persistence")
    monkeypatch.delitem(sys.modules, "torch_utils")

    snapshot = load_snapshot(path, allow_pickle=True)
    obj = snapshot["G_ema"]
    assert isinstance(obj, PersistentObject) and obj.class_name == "Generator"
    assert not hasattr(obj, "module_src") and "module_src" not in obj.state
    assert obj.state["gain"] == 0.25 and obj.init_kwargs == {"z_dim": 3}
    assert torch.equal(obj.state_dict()["weight"], torch.arange(6.0).reshape(2, 3))
    assert "torch_utils" not in sys.modules
    assert not marker.exists()


def test_the_official_fixture_pickle_references_only_allowed_globals():
    snapshot = load_snapshot(PICKLE, allow_pickle=True)
    assert sorted(snapshot) == ["D", "G", "G_ema", "augment_pipe", "training_set_kwargs"]
    assert snapshot["G_ema"].class_name == "Generator" and snapshot["D"].class_name == "Discriminator"
    assert snapshot["G_ema"].init_kwargs["mapping_kwargs"] == {"num_layers": 2}
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


@pytest.mark.parametrize("module", ["numpy._core.multiarray", "numpy.core.multiarray"])
def test_numpy_scalars_from_numpy_1_and_2_pickles_are_rebuilt(module):
    data = pickle.dumps(np.float64(1.5), protocol=3)  # protocol 3 names globals as text lines
    data = data.replace(b"numpy._core.multiarray\nscalar", f"{module}\nscalar".encode())
    data = data.replace(b"numpy.core.multiarray\nscalar", f"{module}\nscalar".encode())
    assert module.encode() in data
    assert RestrictedUnpickler(io.BytesIO(data)).load() == 1.5


def test_object_numpy_scalars_are_refused():
    data = pickle.dumps(np.dtype("O"), protocol=3)
    with pytest.raises(UnsafePickleError, match="numeric"):
        RestrictedUnpickler(io.BytesIO(data)).load()


class _TensorWithHooks:
    """Reduces like a tensor whose rebuild is handed a non-empty backward-hook dict."""

    def __reduce__(self):
        import torch._utils

        with warnings.catch_warnings():  # TypedStorage is deprecated, but it is what tensors pickle to
            warnings.simplefilter("ignore")
            storage = torch.zeros(2).storage()
        return (torch._utils._rebuild_tensor_v2, (storage, 0, (2,), (1,), False, OrderedDict(hook=1)))


def test_tensors_with_backward_hooks_are_refused():
    data = pickle.dumps(_TensorWithHooks())
    with pytest.raises(UnsafePickleError, match="hooks"):
        RestrictedUnpickler(io.BytesIO(data)).load()
    plain = RestrictedUnpickler(io.BytesIO(pickle.dumps(torch.arange(3.0)))).load()
    assert torch.equal(plain, torch.arange(3.0))


def test_loading_without_opt_in_names_the_risk_and_the_flag():
    with pytest.raises(PickleNotAllowedError) as err:
        load_snapshot(PICKLE)
    message = str(err.value)
    assert (
        "arbitrary code" in message
        and "allow_pickle" in message
        and "zoo convert stylegan2-ada-pkl" in message
    )


# -- loading a card whose weights are an official pickle ---------------------------------------------------------
CARD = """
models:
  - name: sg-small-pkl
    family: stylegan
    plugin: stylegan
    architecture: stylegan2
    weights: {{source: "{source}", format: stylegan2-ada-pkl}}
    default_sampler: gan
"""


@pytest.fixture
def pickle_card(tmp_path, monkeypatch):
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    (weights_dir / PICKLE.name).write_bytes(PICKLE.read_bytes())
    registry = tmp_path / "registry.yaml"
    registry.write_text(CARD.format(source=weights_dir), encoding="utf-8")
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    monkeypatch.delenv("ZOO_ALLOW_PICKLE", raising=False)
    return "sg-small-pkl"


def test_a_pickle_card_without_opt_in_tells_how_to_opt_in_or_convert(pickle_card):
    with pytest.raises(PickleNotAllowedError) as err:
        zoo.load(pickle_card)
    message = str(err.value)
    assert "ZOO_ALLOW_PICKLE=1" in message and "allow_pickle=True" in message and "zoo convert" in message


def test_a_pickle_card_loads_with_the_environment_opt_in(pickle_card, monkeypatch):
    monkeypatch.setenv("ZOO_ALLOW_PICKLE", "1")
    model = zoo.load(pickle_card)
    io_ = official_io()
    with torch.no_grad():
        img = model(io_["z"], io_["c"], truncation_psi=0.7, noise_mode="const")
    torch.testing.assert_close(img, io_["img"], atol=1e-5, rtol=0)
    assert model.card.name == pickle_card and not model.training


def test_a_pickle_card_loads_with_allow_pickle_in_from_card(pickle_card):
    model = StyleGANModel.from_card(zoo.info(pickle_card), allow_pickle=True)
    assert model.config.c_dim == 4
    with pytest.raises(PickleNotAllowedError):
        StyleGANModel.from_card(zoo.info(pickle_card), allow_pickle=False)


def test_a_hub_pickle_card_refuses_before_downloading(monkeypatch):
    monkeypatch.delenv("ZOO_ALLOW_PICKLE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PickleNotAllowedError, match="cifar10.pkl|ada"):
        zoo.load("stylegan2-ada-cifar10")


def test_a_directory_holding_only_a_pickle_is_not_read_as_zoo_weights(tmp_path):
    (tmp_path / "net.pkl").write_bytes(PICKLE.read_bytes())
    with pytest.raises(WeightsError, match="zoo convert stylegan2-ada-pkl"):
        StyleGANModel.read_state_dict(tmp_path)


def test_a_pickle_card_given_its_converted_copy_loads_without_opt_in(pickle_card, tmp_path):
    from zoo_stylegan.convert import convert_stylegan2_ada_pkl

    out = convert_stylegan2_ada_pkl(PICKLE, tmp_path / "converted", allow_pickle=True)
    model = zoo.load(pickle_card, weights=out)
    io_ = official_io()
    with torch.no_grad():
        img = model(io_["z"], io_["c"], truncation_psi=0.7, noise_mode="const")
    torch.testing.assert_close(img, io_["img"], atol=1e-5, rtol=0)
