"""The Hugging Face Hub: ``hf://`` sources downloaded into the normal Hub cache, and ``zoo push``.

Downloads are ``snapshot_download`` (``hf_hub_download`` for one named file) with their own cache layout, revision
pinning (a cached commit is served without the network), ``HF_HUB_OFFLINE`` / ``local_files_only`` and
completeness checks. On top of them zoo adds only what they do not do:

- the card's sha256 pins: a cached or downloaded file that fails is removed from the cache (snapshot link and
  blob) and downloaded once more, so no later call trusts it;
- one ``HubUnreachableWarning`` when the Hub cannot be reached and the cached revision is used instead;
- errors that name the file, the repo and the fix (``zoo download NAME`` when offline and not cached).

``push`` writes the README with ``huggingface_hub.ModelCard``/``ModelCardData`` (metrics as ``model-index`` eval
results) and uploads with ``HfApi`` in one commit (``create_commit``), to a branch or as a pull request.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import httpx2  # huggingface_hub 2.x's HTTP client: its TransportError is "no answer from the Hub"
from huggingface_hub import (
    CommitOperationAdd,
    EvalResult,
    HfApi,
    ModelCardData,
    constants,
    get_cached_repo_tree,
    get_token,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub import ModelCard as HubModelCard
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

from zoo_core.checksums import checksum_mismatches
from zoo_core.errors import ChecksumError, WeightsError
from zoo_core.jsonio import read_optional_json_object as _read_json
from zoo_core.sources import is_hub_source, parse_hf_source

logger = logging.getLogger(__name__)

_COMMIT = re.compile(r"[0-9a-f]{40}")
_GLOB = re.compile(r"[*?\[]")
_NETWORK = (httpx2.TransportError, ConnectionError, TimeoutError)


class HubUnreachableWarning(UserWarning):
    """The Hub could not be reached, so cached files were used (they may be older than the Hub's revision)."""


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` read now (huggingface_hub reads it once, at import)."""
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.upper() in {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class _Target:
    repo_id: str
    revision: str
    subfolder: str | None
    files: tuple[str, ...]
    cache_dir: str | None
    endpoint: str | None
    token: str | bool | None
    model: str | None

    @property
    def label(self) -> str:
        return f"hf://{self.repo_id}@{self.revision}" + (f"/{self.subfolder}" if self.subfolder else "")

    @property
    def hub_url(self) -> str:
        return (self.endpoint or constants.ENDPOINT).rstrip("/")

    def patterns(self) -> list[str] | None:
        """Allow-patterns relative to the repo root; a subfolder may also name one file."""
        prefix = f"{self.subfolder}/" if self.subfolder else ""
        if self.files:
            return [prefix + pattern for pattern in self.files]
        return [prefix + "*", self.subfolder] if self.subfolder else None

    def single_file(self) -> str | None:
        """The one file ``hf_hub_download`` fetches (no repo listing) when the card names one file, no glob."""
        if len(self.files) == 1 and not _GLOB.search(self.files[0]):
            return (f"{self.subfolder}/" if self.subfolder else "") + self.files[0]
        return None

    def cache_root(self) -> Path:
        return Path(self.cache_dir or constants.HF_HUB_CACHE).expanduser().resolve()

    def offline_help(self) -> str:
        rev = "" if self.revision == constants.DEFAULT_REVISION else f"@{self.revision}"
        what = self.model or f"hf://{self.repo_id}{rev}" + (f"/{self.subfolder}" if self.subfolder else "")
        return (
            f"To use it without network: run `zoo download {what}` on a machine that can reach the Hub and copy "
            "its Hugging Face cache (~/.cache/huggingface/hub) to the same place here, or point HF_HOME (or "
            "HF_HUB_CACHE) at a copied cache, or pass a local directory holding the weights with `weights=` "
            "(`--weights` on the command line)."
        )


def download(
    source: str,
    *,
    revision: str | None = None,
    allow_patterns: Sequence[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    sha256: Mapping[str, str] | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    model: str | None = None,
) -> Path:
    """The local directory holding ``hf://org/repo[@rev][/subfolder]`` (a file if the subfolder names one).

    ``revision`` (else the source's ``@rev``, else ``main``) is a branch, tag or commit; ``allow_patterns`` are
    relative to the subfolder; ``sha256`` maps file names (relative to the returned directory) to checksums;
    ``model`` is the card's name, for messages.
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
        model=model,
    )
    if offline_mode():
        reason: str | None = "HF_HUB_OFFLINE is set"
    elif _COMMIT.fullmatch(target.revision):
        reason = None  # a commit never changes: huggingface_hub serves it from the cache without asking
    else:
        reason = _unreachable(target)
    path = _fetch(target, offline_reason=reason)
    if reason is not None and not offline_mode():
        parts = path.parts
        commit = parts[len(parts) - 1 - parts[::-1].index("snapshots") + 1] if "snapshots" in parts else "?"
        warnings.warn(
            f"Cannot reach the Hugging Face Hub at {target.hub_url} ({reason}); working offline with the cached "
            f"revision {commit} of {target.repo_id} ('{target.revision}'), which may be older than the Hub's. Set "
            "HF_HUB_OFFLINE=1 to skip the check.",
            HubUnreachableWarning,
            stacklevel=3,
        )
    refetch = None if reason is not None else (lambda: _fetch(target, offline_reason=None))
    return _verified(target, path, sha256 or {}, refetch)


def _unreachable(target: _Target) -> str | None:
    """Why the Hub did not answer (network, timeout, 5xx), or None if it did; its refusals are the user's error."""
    api = HfApi(endpoint=target.endpoint, token=target.token)
    try:
        api.model_info(target.repo_id, revision=target.revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status is None or status >= 500 or status == 429:
            return f"HTTP {status}"
        raise _explain(target, exc) from None
    except HFValidationError as exc:
        raise _explain(target, exc) from None
    except _NETWORK as exc:
        return f"the Hugging Face Hub at {target.hub_url} cannot be reached ({_first_line(exc)})"
    return None


def _fetch(target: _Target, *, offline_reason: str | None) -> Path:
    """The snapshot directory (or the one file) ``target`` names; from the cache only when offline."""
    local_only = offline_reason is not None
    kwargs: dict[str, Any] = {
        "repo_id": target.repo_id,
        "revision": target.revision,
        "cache_dir": target.cache_dir,
        "local_files_only": local_only,
        "endpoint": target.endpoint,
        "token": target.token,
    }
    single = target.single_file()
    with _hub_errors(target, offline_reason, single):
        if single is not None:
            file = Path(hf_hub_download(filename=single, **kwargs))
            return file.parents[len(PurePosixPath(target.files[0]).parts) - 1]
        snapshot = Path(snapshot_download(allow_patterns=target.patterns(), **kwargs))
    path = snapshot / target.subfolder if target.subfolder else snapshot
    if path.is_file() or (path.is_dir() and any(path.iterdir())):
        return path
    if local_only:
        raise WeightsError(
            f"{target.label} is not in the Hugging Face cache ({target.cache_root()}) and {offline_reason}. "
            + target.offline_help()
        )
    try:
        listed = [
            f.path
            for f in get_cached_repo_tree(
                target.repo_id, revision=target.revision, cache_dir=target.cache_dir
            )
        ]
    except Exception:  # the listing is only for the message
        listed = []
    raise WeightsError(
        f"{target.label}: no file of {target.repo_id} at revision '{target.revision}' matches "
        f"{', '.join(target.patterns() or ['*'])}. The repo holds: {', '.join(sorted(listed)[:20]) or 'no files'}. "
        "Check the subfolder of the source and the card's `files`."
    )


@contextmanager
def _hub_errors(target: _Target, offline_reason: str | None, single: str | None) -> Iterator[None]:
    """huggingface_hub's errors as WeightsErrors naming the repo, revision or file and the fix."""
    try:
        yield
    except IncompleteSnapshotError as exc:
        raise WeightsError(
            f"Only part of {target.label} is in the Hugging Face cache ({target.cache_root()}) and "
            f"{offline_reason or 'the Hub cannot be reached'}: {_first_line(exc)} {target.offline_help()}"
        ) from None
    except LocalEntryNotFoundError:
        if offline_reason is not None:
            raise WeightsError(
                f"{target.label} is not in the Hugging Face cache ({target.cache_root()}) and {offline_reason}. "
                + target.offline_help()
            ) from None
        raise WeightsError(
            f"Lost the connection to the Hugging Face Hub at {target.hub_url} while downloading {target.label}, and "
            f"the files are not cached. Run again when the network is back. {target.offline_help()}"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, HfHubHTTPError) as exc:
        raise _explain(target, exc, single) from None
    except HFValidationError as exc:
        raise _explain(target, exc) from None
    except _NETWORK as exc:
        raise WeightsError(
            f"Lost the connection to the Hugging Face Hub at {target.hub_url} while downloading {target.label} "
            f"({_first_line(exc)}). Run again when the network is back. {target.offline_help()}"
        ) from None
    except OSError as exc:  # e.g. huggingface_hub's "Consistency check failed" for a truncated download
        raise WeightsError(f"Downloading {target.label} failed: {_first_line(exc)}. Run again.") from None


def _explain(target: _Target, exc: Exception, file: str | None = None) -> WeightsError:
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
        name = file or ", ".join(target.patterns() or ["?"])
        return WeightsError(
            f"File '{name}' is not in Hugging Face repo '{repo}' at revision '{rev}'. Check the card's `files` and "
            "the subfolder of the source."
        )
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return WeightsError(
        f"The Hugging Face Hub at {hub} refused {target.label} (HTTP {status}): {_first_line(exc)}"
    )


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


# -- checksums ------------------------------------------------------------------------------------------------------
def _verified(
    target: _Target, path: Path, expected: Mapping[str, str], refetch: Callable[[], Path] | None
) -> Path:
    """Check the card's checksums; a failing file leaves the cache and, online, is downloaded once more."""
    bad = checksum_mismatches(path, expected)
    if bad and refetch is not None:
        _evict(target, [file for _, file, _ in bad])
        logger.warning(
            "%s of %s failed its checksum (a corrupted download or cache entry); removed it, downloading again.",
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
        "It failed twice: the repo changed under this revision, so pin the card's `revision:` to the commit its "
        "checksums were taken from."
        if refetch is not None
        else "Download it again when the Hub is reachable."
    )
    raise ChecksumError(
        f"Checksum mismatch for '{name}' of {target.label} ({file}): expected sha256 {expected[name].lower()}, got "
        f"{actual}{more}. The file was removed from the Hugging Face cache so it is never used. {after}"
    )


def _evict(target: _Target, files: Sequence[Path]) -> None:
    """Delete cached files: the snapshot entry and the blob it links to (only inside the Hub cache)."""
    root = target.cache_root()
    for file in files:
        blob = file.resolve()
        if root in Path(os.path.abspath(file)).parents:
            file.unlink(missing_ok=True)
            if root in blob.parents:
                blob.unlink(missing_ok=True)


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


def _dataset_name(card: Mapping[str, Any]) -> str | None:
    """The short name of the card's dataset ("sklearn digits (UCI ...), train split" -> "sklearn digits")."""
    text = str(card.get("dataset") or "")
    return re.split(r"[(,;]", text, maxsplit=1)[0].strip() or None


def model_card_data(card: Mapping[str, Any], config: Mapping[str, Any], repo_id: str) -> ModelCardData:
    """What the Hub indexes: library, tags, license, datasets, base model, pipeline tag, and the metrics zoo
    measured (those with the command that measured them; the README's table names the commands) as
    ``model-index`` eval results."""
    architecture = card.get("architecture") or config.get("_zoo_architecture") or config.get("_class_name")
    family = card.get("family") or (str(architecture).split(".")[0] if architecture else None)
    tags = list(dict.fromkeys(str(t) for t in ["zoo", family, architecture, *(card.get("tags") or [])] if t))
    license_id = str(card.get("license") or "").strip().lower().replace(" ", "-") or None
    license_name = None
    if license_id and license_id not in _HUB_LICENSES:
        license_id, license_name = "other", license_id
    base = card.get("base_model")
    source = (card.get("weights") or {}).get("source") or ""
    if not base and is_hub_source(source):
        base = parse_hf_source(source).repo_id
    task = "text-to-image" if _text_conditioned(card, config) else "unconditional-image-generation"
    dataset = _dataset_name(card)
    results = [
        EvalResult(
            task_type=task,
            dataset_type=re.sub(r"[^a-z0-9]+", "-", (dataset or "unspecified").lower()).strip("-"),
            dataset_name=dataset or "unspecified",
            metric_type=str(m["name"]),
            metric_value=m["value"],
        )
        for m in card.get("metrics") or []
        if m.get("command") and isinstance(m.get("value"), (int, float))
    ]
    return ModelCardData(
        library_name="zoo",
        tags=tags,
        license=license_id,
        license_name=license_name,
        datasets=[dataset] if dataset else None,
        base_model=base if base and base != repo_id else None,
        pipeline_tag=task,
        model_name=(card.get("name") or repo_id.split("/")[-1]) if results else None,
        eval_results=results or None,
    )


def model_card_metadata(card: Mapping[str, Any], config: Mapping[str, Any], repo_id: str) -> dict[str, Any]:
    """The README front matter as a dict (``model_card_data`` serialised the way the Hub reads it)."""
    return model_card_data(card, config, repo_id).to_dict()


def render_model_card(card: Mapping[str, Any], config: Mapping[str, Any], repo_id: str) -> HubModelCard:
    """A README.md for the Hub: front matter, what the model is, how to load and sample it, what was measured."""
    data = model_card_data(card, config, repo_id)
    name = card.get("name") or repo_id.split("/")[-1]
    architecture = data.tags[2] if len(data.tags) > 2 else "zoo"
    text = data.pipeline_tag == "text-to-image"
    prompt = ', prompt="a red circle on a blue background"' if text else ""
    prompt_flag = ' --prompt "a red circle on a blue background"' if text else ""
    lines = [f"# {name}", ""]
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
    return HubModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def push(
    directory: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    create_pr: bool = False,
) -> str:
    """Upload a ``save_pretrained`` directory to the Hub repo ``repo_id`` (created if needed) in one commit.

    Returns the repo's URL (the branch's, or the pull request's with ``create_pr``). The README.md model card is
    built with ``huggingface_hub.ModelCard`` from ``card.json``/``config.json``; a README.md in the directory is
    kept (given the generated front matter if it has none). ``revision`` is a branch, created from main if missing.
    ``token`` defaults to huggingface_hub's (HF_TOKEN, ``hf auth login``).
    """
    directory = Path(directory)
    hub = (endpoint or constants.ENDPOINT).rstrip("/")
    branch = revision if revision and revision != constants.DEFAULT_REVISION else None
    if not directory.is_dir():
        raise WeightsError(
            f"{directory} is not a directory: `zoo push` uploads a folder written by save_pretrained"
        )
    config = _read_json(directory / "config.json") or _read_json(directory / "model_index.json")
    if not config:
        raise WeightsError(
            f"{directory} has no config.json: save the model with model.save_pretrained(directory) first"
        )
    if create_pr and branch:
        raise WeightsError(
            f"--create-pr opens a pull request against main of '{repo_id}'; leave out --revision {branch} (or push "
            "to that branch without --create-pr)"
        )
    token = token or get_token()
    if not token:
        raise WeightsError(
            f"Not allowed to push to '{repo_id}' on {hub}: no Hugging Face token found. Log in with `hf auth login`, "
            "set HF_TOKEN, or pass --token."
        )
    card = _read_json(directory / "card.json")
    readme = str(render_model_card(card, config, repo_id))
    existing = directory / "README.md"
    if existing.is_file():
        text = existing.read_text(encoding="utf-8")
        readme = text if text.startswith("---") else readme.split("\n---\n", 1)[0] + "\n---\n\n" + text
    operations = [
        CommitOperationAdd(path_in_repo=file.relative_to(directory).as_posix(), path_or_fileobj=str(file))
        for file in sorted(directory.rglob("*"))
        if file.is_file()
        and file.relative_to(directory).as_posix() != "README.md"
        and not any(part.startswith(".") for part in file.relative_to(directory).parts)
        and not file.name.endswith(".incomplete")
    ]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode("utf-8")))

    api = HfApi(endpoint=endpoint, token=token)
    try:
        url = str(api.create_repo(repo_id, private=private, exist_ok=True))
        if branch:
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        # create_commit, not upload_folder: with hf_xet installed upload_folder streams large folders in several
        # commits; one commit means a failed push leaves nothing behind
        info = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=commit_message or f"Upload {card.get('name') or directory.name} with zoo",
            revision=branch,
            create_pr=create_pr,
        )
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        said = " ".join((exc.server_message or _first_line(exc)).split())
        if isinstance(exc, RepositoryNotFoundError) or status in (401, 403):
            raise WeightsError(
                f"Not allowed to push to '{repo_id}' on {hub}: {said} (HTTP {status}). Log in with a token that has "
                "write access to it (`hf auth login`, HF_TOKEN or --token)."
            ) from None
        raise WeightsError(
            f"Pushing {directory} to '{repo_id}' on {hub} failed: {said} (HTTP {status})"
        ) from None
    except _NETWORK as exc:
        raise WeightsError(
            f"Cannot reach the Hugging Face Hub at {hub} to push '{repo_id}': {_first_line(exc)}"
        ) from None
    if create_pr:
        return str(info.pr_url)
    return url + (f"/tree/{branch}" if branch else "")
