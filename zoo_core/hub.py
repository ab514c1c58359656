"""The Hugging Face Hub: download weights into the normal Hub cache, and push saved models with a model card.

``download`` serves ``hf://org/repo[@revision][/subfolder]`` sources through ``huggingface_hub``
(``snapshot_download``, or ``hf_hub_download`` for one file), so revisions, ``HF_HOME``/``HF_HUB_CACHE``,
``HF_ENDPOINT``, tokens and ``HF_HUB_OFFLINE`` behave as in every other Hub library. On top of it:

- when the Hub cannot be reached, the cached revision is used with one ``HubUnreachableWarning``; when nothing is
  cached the ``WeightsError`` says how to get the files onto this machine;
- a revision pinned to a commit that is already cached is served without touching the network;
- files the card gives a sha256 for are verified, and a file that fails is deleted from the cache (snapshot link
  and blob) so no later call trusts it; a cached file that fails is downloaded again once.

``push`` uploads a directory written by ``Model.save_pretrained`` with ``HfApi.upload_folder``, adding a README.md
whose YAML front matter (library, tags, license, base model, pipeline tag) is built from ``card.json``/``config.json``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from huggingface_hub import HfApi, constants, get_cached_repo_tree, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from zoo_core.errors import ChecksumError, WeightsError
from zoo_core.jsonio import read_optional_json_object as _read_json
from zoo_core.weights import checksum_mismatches, parse_hf_source

logger = logging.getLogger(__name__)

_COMMIT = re.compile(r"[0-9a-f]{40}")
_TRUE = {"1", "ON", "YES", "TRUE"}
_GLOB = re.compile(r"[*?\[]")

OFFLINE_HELP = (
    "To use it without network: run `zoo download <model>` on a machine that can reach the Hub and copy its "
    "Hugging Face cache (~/.cache/huggingface/hub) to the same place here, or point HF_HOME (or HF_HUB_CACHE) at a "
    "copied cache, or pass a local directory holding the weights with `weights=` (`--weights` on the command line)."
)


class HubUnreachableWarning(UserWarning):
    """The Hub could not be reached, so cached files were used (they may be older than the Hub's revision)."""


class _Unreachable(Exception):
    """The Hub did not answer (network down, DNS, timeout, 5xx)."""


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` (read now, not only when ``huggingface_hub`` was imported)."""
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.upper() in _TRUE


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "no answer from the Hub", whichever HTTP library this huggingface_hub uses."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "TransportError"):
            errors.append(module.TransportError)
    requests = sys.modules.get("requests")
    if requests is not None:
        errors += [requests.ConnectionError, requests.Timeout]
    return tuple(errors)


@dataclass(frozen=True)
class _Target:
    repo_id: str
    revision: str
    subfolder: str | None
    files: tuple[str, ...]
    cache_dir: str | None
    endpoint: str | None
    token: str | bool | None

    @property
    def label(self) -> str:
        return f"hf://{self.repo_id}@{self.revision}" + (f"/{self.subfolder}" if self.subfolder else "")

    @property
    def hub_url(self) -> str:
        return (self.endpoint or constants.ENDPOINT).rstrip("/")

    @property
    def prefix(self) -> str:
        return f"{self.subfolder}/" if self.subfolder else ""

    def patterns(self) -> list[str] | None:
        """Allow-patterns relative to the repo root: the card's files live inside the subfolder."""
        if self.files:
            return [self.prefix + pattern for pattern in self.files]
        return [self.prefix + "*"] if self.subfolder else None

    def single_file(self) -> str | None:
        """The one file to fetch with ``hf_hub_download`` when the card names exactly one file, no glob."""
        if len(self.files) == 1 and not _GLOB.search(self.files[0]):
            return self.prefix + self.files[0]
        return None

    def cache_root(self) -> Path:
        return Path(self.cache_dir or constants.HF_HUB_CACHE).expanduser().resolve()

    def hub_kwargs(self, *, local_only: bool) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "cache_dir": self.cache_dir,
            "local_files_only": local_only,
            "endpoint": self.endpoint,
            "token": self.token,
        }


def download(
    source: str,
    *,
    revision: str | None = None,
    allow_patterns: Sequence[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    sha256: Mapping[str, str] | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """The local directory holding ``hf://org/repo[@rev][/subfolder]`` (a file if the subfolder names one).

    ``revision`` (else the source's ``@rev``, else ``main``) is a branch, tag or commit; ``allow_patterns`` are
    relative to the subfolder; ``sha256`` maps file names (relative to the returned directory) to checksums.
    """
    parsed = parse_hf_source(source)
    target = _Target(
        repo_id=parsed.repo_id,
        revision=revision or parsed.revision or constants.DEFAULT_REVISION,
        subfolder=parsed.subfolder,
        files=tuple(allow_patterns),
        cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
        endpoint=endpoint,
        token=token,
    )
    expected = {name: digest.lower() for name, digest in (sha256 or {}).items()}

    if offline_mode():
        path = _from_cache(target, "HF_HUB_OFFLINE is set")
        return _verified(target, path, expected, cached=set(expected), refetch=None)

    if _COMMIT.fullmatch(target.revision):
        path = _complete_cached(target)  # a commit never changes: no need to ask the Hub
        if path is not None:
            return _verified(
                target, path, expected, cached=set(expected), refetch=lambda: _fetch_online(target)
            )

    try:
        info = _model_info(target)
    except _Unreachable as exc:
        path = _from_cache(target, f"the Hugging Face Hub at {target.hub_url} cannot be reached ({exc})")
        commit = _cached_commit(target, path)
        warnings.warn(
            f"Cannot reach the Hugging Face Hub at {target.hub_url} ({exc}); working offline with the cached "
            f"revision {commit or '?'} of {target.repo_id} ('{target.revision}'), which may be older than the "
            "Hub's. Set HF_HUB_OFFLINE=1 to skip the check.",
            HubUnreachableWarning,
            stacklevel=3,
        )
        return _verified(target, path, expected, cached=set(expected), refetch=None)

    is_file = bool(target.subfolder and not target.files and target.subfolder in _siblings(info))
    local = _snapshot_path(target, info.sha, is_file)
    cached = {name for name in expected if (local if is_file else local / name).exists()}
    path = _fetch(target, local_only=False, is_file=is_file, siblings=_siblings(info))
    return _verified(
        target,
        path,
        expected,
        cached=cached,
        refetch=lambda: _fetch(target, local_only=False, is_file=is_file),
    )


# -- fetching -------------------------------------------------------------------------------------------------------
def _model_info(target: _Target) -> Any:
    """Ask the Hub which commit the revision is; a missing repo or revision is the user's error, not the network's."""
    api = HfApi(endpoint=target.endpoint, token=target.token)
    try:
        return api.model_info(target.repo_id, revision=target.revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except (RepositoryNotFoundError, RevisionNotFoundError, HFValidationError) as exc:
        raise _explain(target, exc) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status is None or status >= 500 or status == 429:
            raise _Unreachable(f"HTTP {status}") from None
        raise _explain(target, exc) from None
    except _network_errors() as exc:
        raise _Unreachable(_first_line(exc)) from None


def _siblings(info: Any) -> list[str]:
    return [s.rfilename for s in (getattr(info, "siblings", None) or [])]


def _fetch_online(target: _Target) -> Path:
    info = _model_info(target)
    is_file = bool(target.subfolder and not target.files and target.subfolder in _siblings(info))
    return _fetch(target, local_only=False, is_file=is_file, siblings=_siblings(info))


def _fetch(
    target: _Target, *, local_only: bool, is_file: bool | None, siblings: Sequence[str] | None = None
) -> Path:
    """Download (or find in the cache) what ``target`` names; the directory of its files, or the one file."""
    kwargs = target.hub_kwargs(local_only=local_only)
    single = target.subfolder if is_file else target.single_file()
    with _hub_errors(target, local_only=local_only):
        if single is not None:
            file = Path(hf_hub_download(filename=single, **kwargs))
            if is_file:
                return file
            return file.parents[len(PurePosixPath(target.files[0]).parts) - 1]
        snapshot = Path(snapshot_download(allow_patterns=target.patterns(), **kwargs))
    path = snapshot / target.subfolder if target.subfolder else snapshot
    if path.exists() and (path.is_file() or any(path.iterdir())):
        return path
    if local_only:
        raise LocalEntryNotFoundError(f"{target.label} is not in the cache")
    shown = ", ".join(sorted(siblings or [])[:20]) or "no files"
    wanted = ", ".join(target.patterns() or ["*"])
    raise WeightsError(
        f"{target.label}: no file of {target.repo_id} at revision '{target.revision}' matches {wanted}. The repo "
        f"holds: {shown}. Check the subfolder of the source and the card's `files`."
    )


def _from_cache(target: _Target, reason: str) -> Path:
    """The cached copy of ``target``, or a WeightsError saying why it is needed and how to get it."""
    try:
        return _fetch(target, local_only=True, is_file=None)
    except IncompleteSnapshotError as exc:
        raise WeightsError(
            f"Only part of {target.label} is in the Hugging Face cache ({target.cache_root()}) and {reason}: "
            f"{_first_line(exc)} {OFFLINE_HELP}"
        ) from None
    except (LocalEntryNotFoundError, WeightsError):
        raise WeightsError(
            f"{target.label} is not in the Hugging Face cache ({target.cache_root()}) and {reason}. {OFFLINE_HELP}"
        ) from None


def _complete_cached(target: _Target) -> Path | None:
    """The cached files of a commit-pinned target if the cache is known to hold all of them, else None."""
    try:
        path = _fetch(target, local_only=True, is_file=None)
    except (LocalEntryNotFoundError, WeightsError):
        return None
    if target.single_file() is not None or path.is_file():
        return path  # hf_hub_download found exactly the file asked for
    try:  # snapshot_download checked completeness against the cached file listing, if there is one
        get_cached_repo_tree(target.repo_id, revision=target.revision, cache_dir=target.cache_dir)
    except Exception:
        return None
    return path


def _snapshot_path(target: _Target, commit: str | None, is_file: bool) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    folder = target.cache_root() / repo_folder_name(repo_id=target.repo_id, repo_type="model")
    snapshot = folder / "snapshots" / (commit or "")
    return snapshot / target.subfolder if target.subfolder else snapshot


def _cached_commit(target: _Target, path: Path) -> str | None:
    for part in reversed(path.parts[:-1] if path.is_file() else path.parts):
        if _COMMIT.fullmatch(part):
            return part
    return None


@contextmanager
def _hub_errors(target: _Target, *, local_only: bool) -> Iterator[None]:
    try:
        yield
    except LocalEntryNotFoundError:
        if local_only:
            raise
        raise WeightsError(
            f"Lost the connection to the Hugging Face Hub at {target.hub_url} while downloading {target.label}, and "
            f"the files are not cached. Run again when the network is back. {OFFLINE_HELP}"
        ) from None
    except (
        RepositoryNotFoundError,
        RevisionNotFoundError,
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
    ) as exc:
        raise _explain(target, exc) from None
    except _network_errors() as exc:
        raise WeightsError(
            f"Lost the connection to the Hugging Face Hub at {target.hub_url} while downloading {target.label} "
            f"({_first_line(exc)}). Run again when the network is back. {OFFLINE_HELP}"
        ) from None
    except OSError as exc:  # e.g. huggingface_hub's "Consistency check failed" for a truncated download
        raise WeightsError(f"Downloading {target.label} failed: {_first_line(exc)}. Run again.") from None


def _explain(target: _Target, exc: Exception) -> WeightsError:
    """A WeightsError naming the repo, revision or file and the fix, for an error huggingface_hub raised."""
    repo, rev, hub = target.repo_id, target.revision, target.hub_url
    if isinstance(exc, HFValidationError):
        return WeightsError(f"{target.label} is not a valid Hub source: {_first_line(exc)}")
    if isinstance(exc, GatedRepoError):
        return WeightsError(
            f"{repo} is a gated repo: accept its conditions at {hub}/{repo} and log in (`hf auth login` or HF_TOKEN)."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return WeightsError(
            f"Hugging Face repo '{repo}' was not found at {hub} (or it is private and you are not logged in). Check "
            "the repo id in the card or the hf:// source; for a private repo log in with `hf auth login` or set "
            "HF_TOKEN."
        )
    if isinstance(exc, RevisionNotFoundError):
        return WeightsError(
            f"Hugging Face repo '{repo}' has no revision '{rev}'. Check `revision:` in the card, --revision, or the "
            "@revision of the source (a branch, tag or commit sha), or leave it out to use main."
        )
    if isinstance(exc, EntryNotFoundError):
        name = _entry_name(exc) or ", ".join(target.patterns() or [target.subfolder or "?"])
        return WeightsError(
            f"File '{name}' is not in Hugging Face repo '{repo}' at revision '{rev}'. Check the card's `files` and "
            "the subfolder of the source."
        )
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return WeightsError(
        f"The Hugging Face Hub at {hub} refused {target.label} (HTTP {status}): {_first_line(exc)}"
    )


def _entry_name(exc: Exception) -> str | None:
    match = re.search(r"/resolve/[^/\s]+/(\S+?)\.?$", str(exc), re.MULTILINE)
    return match.group(1) if match else None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


# -- checksums ------------------------------------------------------------------------------------------------------
def _verified(
    target: _Target,
    path: Path,
    expected: Mapping[str, str],
    *,
    cached: set[str],
    refetch: Callable[[], Path] | None,
) -> Path:
    """Check ``expected`` checksums; evict failing files from the cache, and re-download once if they were cached."""
    if not expected:
        return path
    bad = checksum_mismatches(path, expected)
    if not bad:
        return path
    _evict(target, [file for _, file, _ in bad])
    if refetch is not None and {name for name, _, _ in bad} <= cached:
        logger.warning(
            "Cached %s of %s failed its checksum (a corrupted or stale cache entry); removed it, downloading again.",
            ", ".join(name for name, _, _ in bad),
            target.label,
        )
        path = refetch()
        bad = checksum_mismatches(path, expected)
        if not bad:
            return path
        _evict(target, [file for _, file, _ in bad])
    name, file, actual = bad[0]
    more = f" ({len(bad) - 1} more files failed too)" if len(bad) > 1 else ""
    after = (
        "Run again to download it anew; if it fails again, the repo changed under this revision: pin the card's "
        "`revision:` to the commit its checksums were taken from."
        if refetch is not None
        else "Download it again when the Hub is reachable."
    )
    raise ChecksumError(
        f"Checksum mismatch for '{name}' of {target.label} ({file}): expected sha256 {expected[name]}, got "
        f"{actual}{more}. The file was removed from the Hugging Face cache so it is never used. {after}"
    )


def _evict(target: _Target, files: Sequence[Path]) -> None:
    """Delete cached files: the snapshot link, the blob it points to and any link after that, inside the cache."""
    root = target.cache_root()
    for file in files:
        chain = [Path(os.path.abspath(file))]
        while chain[-1].is_symlink() and len(chain) < 8:
            link = Path(os.readlink(chain[-1]))
            chain.append(Path(os.path.abspath(link if link.is_absolute() else chain[-1].parent / link)))
        for entry in chain:
            if root in entry.parents:
                entry.unlink(missing_ok=True)
                logger.debug("evicted %s from the Hugging Face cache", entry)


# -- push -----------------------------------------------------------------------------------------------------------
_HUB_LICENSES = {
    "apache-2.0",
    "mit",
    "openrail",
    "openrail++",
    "creativeml-openrail-m",
    "bigscience-openrail-m",
    "bigscience-bloom-rail-1.0",
    "cc0-1.0",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0",
    "cc-by-nc-nd-4.0",
    "bsd-2-clause",
    "bsd-3-clause",
    "gpl-3.0",
    "lgpl-3.0",
    "agpl-3.0",
    "mpl-2.0",
    "unlicense",
    "llama2",
    "other",
}
_TEXT_KEYS = {"cross_attention_dim", "text_encoder", "text_config", "tokenizer", "encoder_hid_dim"}


def _text_conditioned(card: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    if "text-to-image" in (card.get("tags") or []):
        return True

    def scan(value: Any) -> bool:
        if isinstance(value, Mapping):
            return any(k in _TEXT_KEYS or scan(v) for k, v in value.items())
        if isinstance(value, list):
            return any(scan(v) for v in value)
        return value == "clip-text"

    return scan(config) or scan(card.get("config") or {})


def model_card_metadata(card: Mapping[str, Any], config: Mapping[str, Any], repo_id: str) -> dict[str, Any]:
    """The README front matter the Hub indexes: library, tags, license, base model, pipeline tag."""
    architecture = card.get("architecture") or config.get("_zoo_architecture") or config.get("_class_name")
    family = card.get("family") or (str(architecture).split(".")[0] if architecture else None)
    tags: list[str] = []
    for tag in ["zoo", family, architecture, *(card.get("tags") or [])]:
        if tag and str(tag) not in tags:
            tags.append(str(tag))
    meta: dict[str, Any] = {"library_name": "zoo", "tags": tags}
    license_ = card.get("license")
    if license_:
        license_id = str(license_).strip().lower().replace(" ", "-")
        if license_id in _HUB_LICENSES:
            meta["license"] = license_id
        else:
            meta["license"] = "other"
            meta["license_name"] = license_id
    base = card.get("base_model")
    source = (card.get("weights") or {}).get("source") or ""
    if not base and source.startswith(("hf://", "hf-hub:")):
        base = parse_hf_source(source).repo_id
    if base and base != repo_id:
        meta["base_model"] = base
    meta["pipeline_tag"] = (
        "text-to-image" if _text_conditioned(card, config) else "unconditional-image-generation"
    )
    return meta


def render_model_card(card: Mapping[str, Any], config: Mapping[str, Any], repo_id: str) -> str:
    """A README.md for the Hub: front matter, what the model is, how to load and sample it, what was measured."""
    meta = model_card_metadata(card, config, repo_id)
    name = card.get("name") or repo_id.split("/")[-1]
    architecture = meta["tags"][2] if len(meta["tags"]) > 2 else "zoo"
    text = meta["pipeline_tag"] == "text-to-image"
    prompt = ', prompt="a red circle on a blue background"' if text else ""
    prompt_flag = ' --prompt "a red circle on a blue background"' if text else ""
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "", f"# {name}", ""]
    if card.get("description"):
        lines += [str(card["description"]), ""]
    lines += [
        f"A `{architecture}` model for zoo (`pip install zoo-core`), the plugin-based model zoo for generative image "
        "models. `config.json` holds its configuration and `model.safetensors` its weights.",
        "",
        "## Use",
        "",
        "```python",
        "import zoo",
        "",
        f'model = zoo.load("hf://{repo_id}")',
        f"images = model.sample(16, seed=0{prompt})",
        "```",
        "",
        f"or `zoo sample hf://{repo_id} --n 16{prompt_flag} --out grid.png`.",
        "",
    ]
    facts = [
        ("Architecture", architecture),
        ("Family", card.get("family")),
        ("Default sampler", card.get("default_sampler")),
        ("Default steps", card.get("default_steps")),
        ("Resolution", card.get("resolution")),
        ("Dataset", card.get("dataset")),
        ("Paper", card.get("paper")),
        ("License", card.get("license")),
    ]
    lines += [f"- {key}: {value}" for key, value in facts if value not in (None, "")]
    lines.append("")
    metrics = card.get("metrics") or []
    if metrics:
        lines += ["## Measured", "", "| metric | value | command |", "| --- | --- | --- |"]
        lines += [f"| {m.get('name')} | {m.get('value')} | `{m.get('command') or ''}` |" for m in metrics]
        lines.append("")
    if card.get("training_command"):
        lines += ["## Training", "", "```", str(card["training_command"]), "```", ""]
    return "\n".join(lines)


def _stage(directory: Path, stage: Path, readme: str) -> None:
    """Mirror ``directory`` into ``stage`` with links (the user's folder is never modified) plus the README."""
    for file in sorted(directory.rglob("*")):
        if not file.is_file():
            continue
        relative = file.relative_to(directory)
        if relative.as_posix() == "README.md":
            continue
        destination = stage / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(file.resolve(), destination)
        except OSError:  # no symlinks (some Windows setups): copy
            shutil.copy2(file, destination)
    (stage / "README.md").write_text(readme, encoding="utf-8")


def push(
    directory: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
) -> str:
    """Upload a ``save_pretrained`` directory to the Hub repo ``repo_id`` (created if needed); returns its URL.

    A README.md model card is generated from ``card.json``/``config.json``; a README.md already in the directory
    is kept (with the generated front matter added if it has none). ``revision`` is a branch, created from main if
    missing.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise WeightsError(
            f"{directory} is not a directory: `zoo push` uploads a folder written by save_pretrained"
        )
    config = _read_json(directory / "config.json") or _read_json(directory / "model_index.json")
    if not config:
        raise WeightsError(
            f"{directory} has no config.json: save the model with model.save_pretrained(directory) first"
        )
    card = _read_json(directory / "card.json")
    readme = render_model_card(card, config, repo_id)
    existing = directory / "README.md"
    if existing.is_file():
        text = existing.read_text(encoding="utf-8")
        readme = text if text.startswith("---") else readme.split("\n---\n", 1)[0] + "\n---\n\n" + text

    api = HfApi(endpoint=endpoint, token=token)
    hub = (endpoint or constants.ENDPOINT).rstrip("/")
    message = commit_message or f"Upload {card.get('name') or directory.name} with zoo"
    try:
        url = str(api.create_repo(repo_id, private=private, exist_ok=True))
        if revision and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="zoo-push-") as stage:
            _stage(directory, Path(stage), readme)
            api.upload_folder(
                repo_id=repo_id,
                folder_path=stage,
                revision=revision,
                commit_message=message,
                ignore_patterns=[".*.tmp", "*.incomplete"],
            )
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if isinstance(exc, RepositoryNotFoundError) or status in (401, 403):
            raise WeightsError(
                f"Not allowed to push to '{repo_id}' on {hub} (HTTP {status}). Log in with a token that has write "
                "access (`hf auth login`, or set HF_TOKEN), and check that you may write to that namespace."
            ) from None
        raise WeightsError(
            f"Pushing {directory} to '{repo_id}' on {hub} failed: {_first_line(exc)}"
        ) from None
    except _network_errors() as exc:
        raise WeightsError(
            f"Cannot reach the Hugging Face Hub at {hub} to push '{repo_id}': {_first_line(exc)}"
        ) from None
    if revision and revision != constants.DEFAULT_REVISION:
        url += f"/tree/{revision}"
    return url
