"""Weights: resolve a source to local files, verify checksums, load safetensors into a model with clear errors.

Sources:
- ``hf://org/repo[@revision][/subfolder]`` - the Hugging Face Hub, through ``huggingface_hub`` (see ``zoo_core.hub``);
- ``embedded:package/relative/path`` - files shipped inside an installed plugin package;
- a local directory or file path.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from zoo_core.checksums import checksum_mismatches as checksum_mismatches
from zoo_core.checksums import sha256_file as sha256_file
from zoo_core.checksums import verify_checksums
from zoo_core.errors import WeightsError
from zoo_core.hub import download
from zoo_core.sources import HubSource, embedded_path, is_hub_source, parse_hf_source

__all__ = ["HubSource", "embedded_path", "is_hub_source", "parse_hf_source"]  # kept importable from here


def resolve(
    source: str | os.PathLike[str],
    *,
    revision: str | None = None,
    files: Sequence[str] = (),
    sha256: Mapping[str, str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    model: str | None = None,
) -> Path:
    """A local path (directory or file) holding the weights of ``source``, downloaded and verified if needed.

    ``model`` (the card's name) only makes messages concrete (``zoo download NAME``)."""
    source = os.fspath(source)
    if is_hub_source(source):
        # download verifies the checksums itself: a file that fails must also leave the Hub cache
        return download(
            source, revision=revision, allow_patterns=files, cache_dir=cache_dir, sha256=sha256, model=model
        )
    if source.startswith("embedded:"):
        path = embedded_path(source)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise WeightsError(
                f"Weights path {source!r} does not exist. Give a local directory or file, hf://org/repo for the "
                "Hugging Face Hub, or a model name from `zoo list`."
            )
    if sha256:
        verify_checksums(path, sha256)
    return path


def load_safetensors(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(os.fspath(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"Could not read safetensors file {os.fspath(path)!r}: {exc}") from None


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from one file: safetensors, or a ``.bin``/``.pt``/``.pth`` read with ``weights_only=True``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    state = load_torch_checkpoint(path)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(state)


def _pickle_bytes(path: str) -> list[bytes]:
    """The pickles of a torch checkpoint: ``data.pkl`` of the zip format, or the legacy file's stream."""
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [archive.read(n) for n in archive.namelist() if n.endswith("data.pkl")]
    with open(path, "rb") as handle:
        return [handle.read()]


def unsafe_globals(path: str | os.PathLike[str]) -> list[str]:
    """The globals (``module.name``) a torch checkpoint's pickle imports that ``torch.load(weights_only=True)``
    does not allow, read from the pickle's opcodes without running it (so it does not depend on torch's wording)."""
    import io
    import pickletools

    from torch import _weights_only_unpickler as safe  # the allow-list torch.load(weights_only=True) applies

    allowed = set(safe._get_allowed_globals())
    allowed |= {
        f"{g.__module__}.{g.__name__}"
        for g in torch.serialization.get_safe_globals()
        if hasattr(g, "__name__")
    }
    found: list[str] = []
    for data in _pickle_bytes(os.fspath(path)):
        stream = io.BytesIO(data)
        while stream.tell() < len(data):
            strings: list[str] = []  # recent string pushes and memo gets: STACK_GLOBAL's module and name
            memo: dict[int, Any] = {}
            try:
                for op, arg, _ in pickletools.genops(stream):
                    if op.name == "GLOBAL":
                        found.append(str(arg).replace(" ", ".", 1))
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str) and "UNICODE" in op.name:
                        strings.append(arg)
                    elif op.name == "MEMOIZE":
                        memo[len(memo)] = strings[-1] if strings else None
                    elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                        memo[int(arg)] = strings[-1] if strings else None
                    elif op.name in ("BINGET", "LONG_BINGET", "GET") and isinstance(memo.get(int(arg)), str):
                        strings.append(memo[int(arg)])
            except Exception:  # not (or no longer) a pickle: what was read so far counts
                break
    return [g for g in dict.fromkeys(found) if g not in allowed]


def code_execution_message(name: str, needed: str | None) -> str:
    what = f"it calls {needed}" if needed else "it names Python objects beyond tensors and plain containers"
    return (
        f"Refused to load {name!r}: it is a pickle that needs code to load ({what}); unpickling it would be code "
        "execution, not reading weights. "
        "zoo reads .pt/.pth/.bin files only with torch.load(weights_only=True), which never runs code from the "
        "file. Use safetensors weights, convert an official checkpoint with its converter (`zoo convert "
        "<converter> FILE OUT`), or re-save its tensors as safetensors where the file was made."
    )


def load_torch_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Read a ``.bin``/``.pth``/``.pt`` with ``weights_only=True``: tensors and plain containers, never code."""
    import pickle

    name = os.fspath(path)
    try:
        return torch.load(name, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        try:
            unsafe = unsafe_globals(name)
        except Exception:
            unsafe = []
        if not unsafe:  # torch's own words, as a fallback
            match = re.search(r"GLOBAL (\S+)", str(exc))
            unsafe = [match.group(1)] if match else []
        if unsafe:
            raise WeightsError(code_execution_message(name, unsafe[0])) from None
        reason = re.search(r"WeightsUnpickler error:\s*(.+?)\s*$", str(exc), re.MULTILINE | re.DOTALL)
        detail = " ".join((reason.group(1) if reason else str(exc)).split()[:12])
        raise WeightsError(
            f"Could not read {name!r} with torch.load(weights_only=True): {detail}. Is it a PyTorch checkpoint, "
            "and complete?"
        ) from None
    except Exception as exc:
        raise WeightsError(
            f"Could not read {name!r} with torch.load(weights_only=True): {type(exc).__name__}: {exc}"
        ) from None


def peek_torch_checkpoint(path: str | os.PathLike[str]) -> Any:
    """What a torch file holds, for a converter's ``detect``: memory-mapped (zip format: keys and structure without
    reading tensor data), else read whole; always ``weights_only=True``. Raises on anything unreadable."""
    name = os.fspath(path)
    try:
        return torch.load(name, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # the legacy (non-zip) format cannot be memory-mapped
        return torch.load(name, map_location="cpu", weights_only=True)


#: set (``allow_nonfinite``, ``ZOO_ALLOW_NONFINITE=1``, ``zoo sample --allow-nonfinite-weights``) to load weights
#: holding NaN or inf anyway, e.g. to debug the run that produced them
ALLOW_NONFINITE: contextvars.ContextVar[bool] = contextvars.ContextVar("zoo_allow_nonfinite", default=False)


@contextlib.contextmanager
def allow_nonfinite(allow: bool = True) -> Iterator[None]:
    token = ALLOW_NONFINITE.set(allow)
    try:
        yield
    finally:
        ALLOW_NONFINITE.reset(token)


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or inf (they would sample NaN images), naming the first bad tensor."""
    if ALLOW_NONFINITE.get() or os.environ.get("ZOO_ALLOW_NONFINITE") == "1":
        return
    for key, tensor in state.items():
        if tensor.is_floating_point() and not tensor.is_meta and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise WeightsError(
                f"Weights in {source} hold NaN or inf: {key} has {bad} of {tensor.numel()} values non-finite (the "
                "training run diverged, or the file is corrupt). Load them anyway to debug with "
                "zoo.load(..., allow_nonfinite=True), ZOO_ALLOW_NONFINITE=1 or --allow-nonfinite-weights"
            )


def save_safetensors(
    state: Mapping[str, torch.Tensor], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write safetensors atomically: to a temporary file in the same directory, then rename over the target."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=dict(metadata or {}))
        _fsync(tmp)
        _default_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _fsync(path: str) -> None:
    """Flush the temporary file to disk before the rename, so a crash cannot leave an empty target."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _default_permissions(path: str) -> None:
    """mkstemp makes files private (0600); give them the permissions a plain open() would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_json_atomic(data: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        _default_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _preview(keys: Sequence[str], limit: int = 8) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def check_state_dict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a WeightsError listing missing keys, unexpected keys and shape mismatches, before anything is loaded."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_preview(unexpected)}")
    if mismatched:
        problems.append(
            f"shape mismatches: {'; '.join(mismatched[:5])}" + (" ..." if len(mismatched) > 5 else "")
        )
    if problems:
        raise WeightsError(
            f"Weights in {source} do not fit {type(module).__name__}: "
            + " | ".join(problems)
            + ". Is this checkpoint for another model or config?"
        )


def load_state_dict_checked(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module`` after ``check_state_dict``, casting to each parameter's dtype."""
    check_state_dict(module, state, source)
    module.load_state_dict(dict(state), strict=True)
