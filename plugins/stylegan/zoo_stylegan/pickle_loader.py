"""Read StyleGAN2-ADA network pickles (``network-snapshot-*.pkl``) without importing or running their code.

An official snapshot is a plain pickle of ``{"G", "D", "G_ema", "augment_pipe", "training_set_kwargs", ...}``. The
networks are ``torch_utils.persistence`` objects: each reduces to
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta = {type, version, module_src, class_name,
state}``, and the official loader *executes* ``module_src`` (the network's Python source) to rebuild the class.
So an ordinary ``pickle.load`` of a downloaded snapshot runs whatever code the file carries.

This loader unpickles with an explicit allow-list instead: tensor and storage rebuild functions (storages go
through ``torch.load(weights_only=True)``), ``collections.OrderedDict``, ``builtins.set``, numeric numpy scalars and
dtypes, and stand-ins for ``_reconstruct_persistent_obj`` (a ``PersistentObject`` that keeps ``class_name`` and
``state`` and drops ``module_src`` unread) and ``dnnlib.util.EasyDict`` (a plain dict). Any other global is refused
with an error naming it, before it is imported. Even so, reading a pickle is opt-in (``allow_pickle=True``): the
format is not meant for untrusted input, and a safetensors conversion is what should be shared.
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

from zoo_core.errors import WeightsError

PKL_FORMAT = "stylegan2-ada-pkl"
OPT_IN_FLAG = "allow_pickle"
OPT_IN_ENV = "ZOO_ALLOW_PICKLE"


class UnsafePickleError(WeightsError):
    """The pickle references a global outside the allow-list (it may try to run code); nothing was imported."""


class PickleNotAllowedError(WeightsError):
    """Reading a pickle was not opted into."""


def pickle_opt_in_message(
    path: str | os.PathLike[str], how: str | None = None, download: str | None = None
) -> str:
    """The error text that names the risk, the opt-in flag and the convert-once alternative.

    ``download`` is the command that fetches a remote pickle first (e.g. ``zoo download <card>``).
    """
    path = os.fspath(path)
    local = "FILE.pkl" if download else path
    fetch = f"download it with `{download}`, then " if download else ""
    return (
        f"{path} is a StyleGAN2-ADA network pickle. Unpickling such a file can run arbitrary code (the official "
        "loader executes the Python source stored inside it), so zoo reads it only when you opt in, and then with a "
        "restricted unpickler that imports nothing from the file and only rebuilds tensors. Opt in with "
        + (how or f"{OPT_IN_FLAG}=True")
        + f"; or {fetch}convert it once: `zoo convert {PKL_FORMAT} {local} OUT_DIR --set {OPT_IN_FLAG}=true` and "
        "load OUT_DIR (safetensors)."
    )


def env_allows_pickle() -> bool:
    return os.environ.get(OPT_IN_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


class PersistentObject:
    """What ``_reconstruct_persistent_obj(meta)`` stands for: the class name and the pickled ``__dict__``.

    ``module_src`` is deliberately dropped without being looked at.
    """

    __slots__ = ("class_name", "state", "version")

    def __init__(self, class_name: str, state: dict[str, Any], version: Any) -> None:
        self.class_name = class_name
        self.state = state
        self.version = version

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name!r})"

    @property
    def init_args(self) -> tuple[Any, ...]:
        return tuple(self.state.get("_init_args") or ())

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return plain(self.state.get("_init_kwargs") or {})

    def children(self) -> Iterator[tuple[str, Any]]:
        yield from (self.state.get("_modules") or {}).items()

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers under their dotted names, in ``nn.Module.state_dict()`` order."""
        out: dict[str, torch.Tensor] = {}
        non_persistent = set(self.state.get("_non_persistent_buffers_set") or ())
        for group in ("_parameters", "_buffers"):
            for name, tensor in (self.state.get(group) or {}).items():
                if tensor is None or (group == "_buffers" and name in non_persistent):
                    continue
                if not isinstance(tensor, torch.Tensor):
                    raise WeightsError(
                        f"{prefix}{name} in the pickle is a {type(tensor).__name__}, not a tensor"
                    )
                out[prefix + name] = tensor
        for name, child in self.children():
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise WeightsError(
                    f"submodule {prefix}{name} in the pickle is not a StyleGAN2-ADA network object"
                )
            out.update(child.state_dict(f"{prefix}{name}."))
        return out


def plain(value: Any) -> Any:
    """EasyDicts / OrderedDicts / tuples of the pickle as plain JSON-like Python values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# -- safe stand-ins for the allowed globals ------------------------------------------------------------------------
def _reconstruct_persistent_obj(meta: dict[str, Any]) -> PersistentObject:
    if (
        not isinstance(meta, dict)
        or meta.get("type") != "class"
        or not isinstance(meta.get("class_name"), str)
    ):
        raise WeightsError(
            "a persistent object in the pickle has no class name: not a StyleGAN2-ADA snapshot"
        )
    state = meta.get("state")
    return PersistentObject(
        meta["class_name"], dict(state) if isinstance(state, dict) else {}, meta.get("version")
    )


class EasyDictData(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: the same items, as a dict."""


def _load_storage(data: bytes) -> Any:
    """A storage pickled by ``torch.save`` (what ``torch.storage._load_from_bytes`` reads), read weights-only."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("torch.storage._load_from_bytes got something other than bytes")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"a tensor storage in the pickle could not be read safely: {exc}") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a storage entry of the pickle holds a {type(storage).__name__}")
    return storage


def _check_hooks(hooks: Any) -> None:
    if hooks:
        raise UnsafePickleError("a tensor in the pickle carries backward hooks; refusing to rebuild it")


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    _check_hooks(backward_hooks)
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"tensor storage is a {type(storage).__name__}, not a torch storage")
    with warnings.catch_warnings():  # TypedStorage is what torch.load returns for legacy storages
        warnings.simplefilter("ignore", UserWarning)
        dtype = storage.dtype if isinstance(storage, torch.TypedStorage) else torch.uint8
        untyped = storage.untyped() if isinstance(storage, torch.TypedStorage) else storage
    t = torch.empty(0, dtype=dtype)
    t.set_(untyped, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))
    return t


def _rebuild_parameter(
    data: torch.Tensor, requires_grad: bool = False, backward_hooks: Any = None
) -> torch.Tensor:
    _check_hooks(backward_hooks)
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("a parameter in the pickle does not hold a tensor")
    return data


def _rebuild_parameter_with_state(
    data: torch.Tensor, requires_grad: bool, backward_hooks: Any, state: Any
) -> torch.Tensor:
    return _rebuild_parameter(data, requires_grad, backward_hooks)


def _numeric_dtype(dtype: Any) -> Any:
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in "biufc":
        raise UnsafePickleError(f"numpy dtype {dtype!r} in the pickle is not a plain numeric type")
    return dtype


def _numpy_dtype(spec: Any, align: bool = False, copy: bool = False) -> Any:
    import numpy as np

    if not isinstance(spec, str):
        raise UnsafePickleError(f"numpy.dtype({spec!r}) in the pickle: only dtype names are allowed")
    return _numeric_dtype(np.dtype(spec))


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """A numpy scalar (e.g. a layer's ``weight_gain``) from its raw bytes; object scalars are refused."""
    import numpy as np

    dtype = _numeric_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise UnsafePickleError("numpy scalar in the pickle does not hold raw numeric bytes")
    return np.frombuffer(data, dtype=dtype, count=1)[0].item()


ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDictData,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ``ALLOWED_GLOBALS`` (to safe stand-ins) and never imports a module."""

    def find_class(self, module: str, name: str) -> Any:
        target = ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise UnsafePickleError(
                f"The pickle references the global {module}.{name}, which is not on zoo's allow-list for "
                "StyleGAN2-ADA snapshots (tensors, OrderedDict, set, numpy numbers, persistent network objects). "
                "It was refused and nothing was imported or run: the file is not a plain StyleGAN2-ADA network "
                "pickle, or it tries to execute code."
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"The pickle uses a persistent id ({pid!r}); StyleGAN2-ADA snapshots do not")


def load_snapshot(source: str | os.PathLike[str] | BinaryIO, *, allow_pickle: bool = False) -> dict[str, Any]:
    """The snapshot dict of a StyleGAN2-ADA ``.pkl`` with networks as ``PersistentObject``s (tensors rebuilt).

    ``allow_pickle`` must be True: without it a ``PickleNotAllowedError`` explains the risk and the flag.
    """
    name = getattr(source, "name", None) or (os.fspath(source) if not hasattr(source, "read") else "<stream>")
    if not allow_pickle:
        raise PickleNotAllowedError(pickle_opt_in_message(name))
    if hasattr(source, "read"):
        data = RestrictedUnpickler(source).load()
    else:
        path = Path(source)
        if not path.is_file():
            raise WeightsError(f"StyleGAN2-ADA pickle {path} does not exist")
        with open(path, "rb") as handle:
            try:
                data = RestrictedUnpickler(handle).load()
            except (WeightsError, UnsafePickleError):
                raise
            except Exception as exc:
                raise WeightsError(
                    f"{path} is not a readable StyleGAN2-ADA pickle: {type(exc).__name__}: {exc}"
                ) from None
    if not isinstance(data, dict) or not any(
        isinstance(data.get(k), PersistentObject) for k in ("G_ema", "G", "D")
    ):
        raise WeightsError(
            f"{name} holds no StyleGAN2-ADA networks (expected a dict with 'G_ema', 'G' and 'D')"
        )
    return data
