"""The Converter interface: a checkpoint format that is not zoo's own, read into a zoo model and (where it exists)
written back out.

A card's ``weights.format`` names a converter (``ddgan-official``, ``stylegan2-ada-pkl``); plugins register them
through ``zoo_register_converters`` and the core calls them, so no model family special-cases its own files:

- ``read(path, *, config=None, **options) -> Model``: the official file -> a zoo model (CPU, eval mode), with
  every key and shape checked. ``config`` is the card's architecture config when the file does not record one.
- ``write(model, directory, **options) -> Path``: a zoo model -> the official layout (``save_pretrained(dir,
  format="official")`` / ``zoo export --format official``), where the family has one.
- ``check(source, **options)``: refuse before anything is downloaded (an opt-in the format needs, ...).
- ``detect(path) -> bool``: whether a file with one of ``suffixes`` is in this format (its header or keys, not its
  tensors), so a file given for a card (``weights=FILE``) is read by the converter that reads it.
- ``convert(source, out_dir, **options) -> Path``: ``zoo convert``; by default ``read`` then ``save_pretrained``.

Callables may be given as ``"package.module:function"`` import paths, resolved on first use, so registering a
converter imports neither torch nor the plugin's model code. Nothing here imports the registry or the model.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo_core.errors import WeightsError

#: ``weights.format`` values the core reads itself (no converter)
NATIVE_FORMATS = frozenset({"auto", "zoo", "diffusers"})


def _resolve(target: Any) -> Any:
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        return obj
    return target


@dataclass
class Converter:
    """A registered checkpoint format: what it reads, what it writes, and the functions that do it."""

    name: str
    reads: str
    read: Callable[..., Any] | str
    writes: str = ""
    write: Callable[..., Any] | str | None = None
    check: Callable[..., Any] | str | None = None
    convert: Callable[..., Any] | str | None = None
    #: the zoo architecture it produces (``ddgan.ncsnpp``); lets a weights file given for a card be recognised
    architecture: str | None = None
    #: file name endings of the official files (``.pth``), to find the file in a folder
    suffixes: tuple[str, ...] = ()
    #: ``detect(path) -> bool``: the file (with one of ``suffixes``) is in this format; None: the ending decides
    detect: Callable[[Path], bool] | str | None = None
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.reads:
            raise TypeError(f"converter {self.name!r} must say what it reads (reads=...)")
        if bool(self.write) != bool(self.writes):
            raise TypeError(f"converter {self.name!r}: give write= and writes= together (or neither)")
        self.suffixes = tuple(self.suffixes)

    def function(self, role: str) -> Callable[..., Any] | None:
        """The ``read`` / ``write`` / ``check`` / ``convert`` callable, imported on first use."""
        target = getattr(self, role)
        if target is None:
            return None
        resolved = _resolve(target)
        setattr(self, role, resolved)
        return resolved

    def claims(self, path: Path) -> bool:
        """Whether this converter reads the file ``path``: its name ends with one of ``suffixes`` and ``detect``
        (if any) recognises it; a file ``detect`` cannot read is not claimed."""
        if not self.suffixes or not path.is_file() or not path.name.endswith(self.suffixes):
            return False
        detect = self.function("detect")
        if detect is None:
            return True
        try:
            return bool(detect(path))
        except Exception:
            return False

    def load(self, path: str | os.PathLike[str], **options: Any) -> Any:
        """``read`` the official file at ``path`` into a zoo model."""
        return self.function("read")(Path(path), **options)  # type: ignore[misc]

    def save(self, model: Any, directory: str | os.PathLike[str], **options: Any) -> Path:
        """``write`` ``model`` in the official layout into ``directory``."""
        writer = self.function("write")
        if writer is None:
            raise WeightsError(f"converter {self.name!r} reads {self.reads} but writes nothing")
        return Path(writer(model, Path(directory), **options))

    def run(self, source: str | os.PathLike[str], out_dir: str | os.PathLike[str], **options: Any) -> Path:
        """``zoo convert``: the converter's own ``convert``, else ``read`` + ``save_pretrained(out_dir)``."""
        convert = self.function("convert")
        if convert is not None:
            return Path(convert(Path(source), Path(out_dir), **options))
        return Path(self.load(source, **options).save_pretrained(out_dir))

    def verify_options(self, source: str, **options: Any) -> None:
        """Run ``check`` (if any): refuse before a download or a read."""
        check = self.function("check")
        if check is not None:
            check(source, **options)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plugin": self.plugin,
            "reads": self.reads,
            "writes": self.writes or None,
            "architecture": self.architecture,
        }


def make_converter(name: str, target: Any = None, **fields: Any) -> Converter:
    """What ``register(...)`` of ``zoo_register_converters`` receives -> a Converter.

    ``register("name", read=..., reads=..., write=..., writes=...)``, or ``register("name", Converter(...))``.
    """
    if isinstance(target, Converter):
        if fields:
            raise TypeError(f"converter {name!r}: pass a Converter or keyword fields, not both")
        if target.name != name:
            raise TypeError(f"converter registered as {name!r} is named {target.name!r}")
        return target
    if target is not None:
        raise TypeError(
            f"converter {name!r}: register(name, read=..., reads='what it reads', write=..., writes=...) "
            "(a bare function is no longer a converter: it must read an official file into a zoo model)"
        )
    return Converter(name=name, **fields)


def find_weights_file(path: Path, files: Sequence[str], suffixes: Sequence[str], what: str) -> Path:
    """The one official file a resolved weights path means: the file itself, the card's file, or the only file
    with one of ``suffixes`` in the folder."""
    if path.is_file():
        return path
    named = [
        path / f for f in files if (path / f).is_file() and (not suffixes or str(f).endswith(tuple(suffixes)))
    ]
    found = named or sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(tuple(suffixes)))
    if len(found) != 1:
        listing = ", ".join(p.name for p in found) or "none"
        endings = "/".join(suffixes) or "weights"
        raise WeightsError(
            f"expected one {endings} file ({what}) in {path}, found {listing}; name it in the card's "
            "weights.files, or give the file itself"
        )
    return found[0]
