"""A local Hugging Face Hub for tests: the real ``huggingface_hub`` client talks HTTP to it.

It serves in-memory model repos with branches, tags and commits, and speaks what ``huggingface_hub`` 2.4 calls for
``hf_hub_download``, ``snapshot_download``, ``create_repo``, ``create_branch`` and ``upload_folder``:

- ``HEAD/GET /{repo}/resolve/{revision}/{path}``: regular files answer 200 with ``ETag`` (git blob sha1),
  ``X-Repo-Commit`` and ``Content-Length``; LFS files (``*.safetensors``, ``*.bin``, ``*.pt``, ... or large files)
  answer 302 to a "CDN" (a second server on another port, so the client treats it as a foreign host exactly like
  the real CDN) with ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``. Errors carry ``X-Error-Code``
  (RepoNotFound / RevisionNotFound / EntryNotFound) as the Hub does. No ``X-Xet-*`` headers are ever sent.
- ``GET /api/models/{repo}[/revision/{rev}]`` (``sha``, ``siblings``) and ``GET /api/models/{repo}/tree/{rev}``.
- ``POST /api/repos/create``, ``POST /api/models/{repo}/branch/{branch}``, ``POST /api/validate-yaml`` (parses the
  README front matter with ``yaml.safe_load``), ``POST /api/models/{repo}/preupload/{rev}``, the LFS batch API
  (``/{repo}.git/info/lfs/objects/batch``, basic transfer: PUT to the CDN, then verify) and the NDJSON
  ``POST /api/models/{repo}/commit/{rev}`` (``file`` base64 / ``lfsFile`` / ``deletedFile`` / ``deletedFolder``; ``create_pr=1`` opens ``refs/pr/N``).
  ``writable`` (a set of namespaces, None for any) makes writes elsewhere answer 403 as the Hub does.

Use it from a test module (``tests/`` is not a package, so put it on ``sys.path``)::

    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests/ folder
    pytest_plugins = ["hubserver"]

    def test_download(hub_server):
        sha = hub_server.add_repo("org/model", {"config.json": b"{}", "model.safetensors": blob})
        path = zoo_core.hub.download("hf://org/model")  # the client now talks to hub_server

The ``hub_server`` fixture starts a server, points the client at it (``HubServer.patch_client``: ``HF_ENDPOINT``,
``huggingface_hub.constants.ENDPOINT`` and the resolve URL template, a fresh ``HF_HOME``/``HF_HUB_CACHE`` under
``tmp_path``, ``HF_TOKEN`` = ``hub_server.token``, Xet disabled so uploads use the LFS protocol, offline mode off)
and stops it at the end. ``hub_server.cache_dir`` is the Hub cache the client uses.

``HubServer`` API:

- ``add_repo(repo_id, files, *, revision="main", message=..., private=False, lfs=None) -> commit sha``: create a
  repo (with the Hub's initial ``.gitattributes`` commit) and commit ``files`` (``{path: bytes | str}``) on a branch.
- ``commit(repo_id, files=None, *, delete=(), revision="main", message=..., lfs=None, sha=None) -> sha``: a new
  commit on a branch (created from ``main`` if missing); ``files`` are added to / replace the parent's tree.
  ``lfs`` forces paths into (``True``/an iterable of paths) or out of (``False``) LFS; ``sha`` picks the commit id.
- ``create_branch(repo_id, branch, revision="main")``, ``tag(repo_id, tag, revision)``.
- ``resolve(repo_id, revision) -> sha | None``, ``files(repo_id, revision="main") -> {path: bytes}``,
  ``is_lfs(repo_id, path, revision="main")``, ``repo(repo_id)``.
- ``tamper(repo_id, path, data)`` serves other bytes for ``path`` while every header (etag, size, commit) stays
  the same, like a corrupted transfer; ``untamper(repo_id, path)`` undoes it.
- ``requests``: the ``(method, path)`` pairs received (hub and CDN), ``clear_requests()``; ``unhandled``: requests
  no route knew (a test can assert it is empty to catch protocol drift).
- ``start()`` / ``stop()`` (the same ports are reused on restart, so a test can take the Hub down and back up),
  ``running``, ``url``, ``cdn_url``, ``token``; also a context manager.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
import yaml

TOKEN = "hf_zoo_test_token"
USER = "zoo-tester"
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".pkl",
    ".npz",
    ".npy",
    ".h5",
    ".onnx",
    ".msgpack",
    ".zip",
)
LFS_MIN_SIZE = 10 * 1024 * 1024  # larger files go to LFS whatever their name, as on the Hub
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as ``ETag``/``oid`` of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    oid = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


def default_is_lfs(path: str, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    lfs: frozenset[str]
    message: str
    parent: str | None
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        if revision in self.commits:
            return revision
        if len(revision) >= 7:
            matches = [sha for sha in self.commits if sha.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        return None


class HttpError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a stopped server really refuses the next request (no pooled
    # keep-alive connection survives ``stop()``).
    protocol_version = "HTTP/1.0"
    server_version = "zoo-test-hub/1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        role: str = self.server.role  # type: ignore[attr-defined]
        body = self._read_body() if method in ("POST", "PUT") else b""
        try:
            response = hub._handle(role, method, self.path, self.headers, body)
        except HttpError as exc:
            response = Response.json({"error": exc.message, **exc.extra}, exc.status)
            response.headers["X-Error-Message"] = exc.message
            if exc.code:
                response.headers["X-Error-Code"] = exc.code
            response.headers.update(exc.headers)
        except Exception as exc:  # a bug in the test server: answer 500 so the client shows it
            response = Response.json({"error": f"{type(exc).__name__}: {exc}"}, 500)
        self.send_response(response.status)
        headers = {"Content-Length": str(len(response.body)), **response.headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if method != "HEAD" and response.body:
            self.wfile.write(response.body)


class HubServer:
    """In-memory Hub repos served over HTTP on 127.0.0.1 (plus a "CDN" port for LFS bytes). See the module doc."""

    def __init__(self, *, token: str | None = TOKEN, user: str = USER) -> None:
        self.token = token
        self.user = user
        #: namespaces the token may write to (None: any); others answer 403 as the Hub does
        self.writable: set[str] | None = None
        self.repos: dict[str, Repo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.tampered: dict[tuple[str, str], bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[str] = []
        self.cache_dir: Path | None = None
        self.port = 0
        self.cdn_port = 0
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.RLock()
        self._counter = 0

    # -- lifecycle ----------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self.cdn_port}"

    @property
    def running(self) -> bool:
        return bool(self._servers)

    def start(self) -> HubServer:
        if self.running:
            return self
        for role in ("hub", "cdn"):
            port = self.port if role == "hub" else self.cdn_port
            httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
            httpd.daemon_threads = True
            httpd.hub = self  # type: ignore[attr-defined]
            httpd.role = role  # type: ignore[attr-defined]
            if role == "hub":
                self.port = httpd.server_address[1]
            else:
                self.cdn_port = httpd.server_address[1]
            thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._servers.append(httpd)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Take the Hub down: the next request is refused (connection error), as when the network is gone."""
        for httpd in self._servers:
            httpd.shutdown()
            httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def patch_client(self, monkeypatch: pytest.MonkeyPatch, home: str | Path) -> Path:
        """Point ``huggingface_hub`` (env and its import-time constants) at this server with a fresh HF_HOME."""
        from huggingface_hub import constants

        home = Path(home)
        cache = home / "hub"
        cache.mkdir(parents=True, exist_ok=True)
        env = {
            "HF_ENDPOINT": self.url,
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        if self.token:
            monkeypatch.setenv("HF_TOKEN", self.token)
        else:
            monkeypatch.delenv("HF_TOKEN", raising=False)
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGINGFACE_HUB_CACHE", "HF_OIDC_RESOURCE"):
            monkeypatch.delenv(key, raising=False)
        patches = {
            "ENDPOINT": self.url,
            "HUGGINGFACE_CO_URL_TEMPLATE": self.url + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(cache),
            "HUGGINGFACE_HUB_CACHE": str(cache),
            "HF_ASSETS_CACHE": str(home / "assets"),
            "HF_XET_CACHE": str(home / "xet"),
            "HF_TOKEN_PATH": str(home / "token"),
            "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
            "HF_HUB_OFFLINE": False,
            "HF_HUB_DISABLE_XET": True,
            "HF_HUB_DISABLE_TELEMETRY": True,
        }
        for name, value in patches.items():
            monkeypatch.setattr(constants, name, value, raising=False)
        self.cache_dir = cache
        return cache

    # -- repo content -------------------------------------------------------------------------------------------
    def repo(self, repo_id: str) -> Repo:
        return self.repos[repo_id]

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str],
        *,
        revision: str = "main",
        message: str = "Upload model",
        private: bool = False,
        lfs: bool | Iterable[str] | None = None,
    ) -> str:
        """Create ``repo_id`` (if needed) and commit ``files`` on branch ``revision``; returns the commit sha."""
        with self._lock:
            if repo_id not in self.repos:
                self._create_repo(repo_id, private=private)
            return self.commit(repo_id, files, revision=revision, message=message, lfs=lfs)

    def commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str] | None = None,
        *,
        delete: Iterable[str] = (),
        revision: str = "main",
        message: str = "Update",
        lfs: bool | Iterable[str] | None = None,
        sha: str | None = None,
    ) -> str:
        with self._lock:
            repo = self.repos[repo_id]
            if revision not in repo.branches:
                repo.branches[revision] = repo.branches["main"]
            parent = repo.commits[repo.branches[revision]]
            tree = dict(parent.files)
            lfs_paths = set(parent.lfs)
            for path in delete:
                tree.pop(path, None)
                lfs_paths.discard(path)
            for path, data in (files or {}).items():
                blob = data.encode() if isinstance(data, str) else bytes(data)
                tree[path] = blob
                if lfs is True or (isinstance(lfs, Iterable) and path in set(lfs)):
                    in_lfs = True
                elif lfs is False:
                    in_lfs = False
                else:
                    in_lfs = default_is_lfs(path, len(blob))
                if in_lfs:
                    lfs_paths.add(path)
                    self.lfs_store[hashlib.sha256(blob).hexdigest()] = blob
                else:
                    lfs_paths.discard(path)
            return self._new_commit(repo, revision, tree, frozenset(lfs_paths), message, sha)

    def create_branch(self, repo_id: str, branch: str, revision: str = "main") -> str:
        with self._lock:
            repo = self.repos[repo_id]
            sha = repo.resolve(revision)
            if sha is None:
                raise KeyError(f"{repo_id} has no revision {revision!r}")
            repo.branches[branch] = sha
            return sha

    def tag(self, repo_id: str, tag: str, revision: str = "main") -> str:
        with self._lock:
            repo = self.repos[repo_id]
            sha = repo.resolve(revision)
            if sha is None:
                raise KeyError(f"{repo_id} has no revision {revision!r}")
            repo.tags[tag] = sha
            return sha

    def resolve(self, repo_id: str, revision: str = "main") -> str | None:
        repo = self.repos.get(repo_id)
        return repo.resolve(revision) if repo else None

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        sha = repo.resolve(revision)
        if sha is None:
            raise KeyError(f"{repo_id} has no revision {revision!r}")
        return dict(repo.commits[sha].files)

    def is_lfs(self, repo_id: str, path: str, revision: str = "main") -> bool:
        repo = self.repos[repo_id]
        return path in repo.commits[repo.resolve(revision) or ""].lfs

    def tamper(self, repo_id: str, path: str, data: bytes) -> None:
        """Serve ``data`` for ``path`` (any revision) while headers keep announcing the real file."""
        self.tampered[(repo_id, path)] = data

    def untamper(self, repo_id: str, path: str) -> None:
        self.tampered.pop((repo_id, path), None)

    def clear_requests(self) -> None:
        self.requests.clear()

    # -- internals ----------------------------------------------------------------------------------------------
    def _create_repo(self, repo_id: str, *, private: bool) -> Repo:
        repo = Repo(repo_id, private=private)
        self.repos[repo_id] = repo
        self._new_commit(repo, "main", {".gitattributes": GITATTRIBUTES}, frozenset(), "initial commit", None)
        return repo

    def _new_commit(
        self,
        repo: Repo,
        branch: str,
        tree: dict[str, bytes],
        lfs: frozenset[str],
        message: str,
        sha: str | None,
    ) -> str:
        self._counter += 1
        parent = repo.branches.get(branch)
        if sha is None:
            digest = hashlib.sha1(f"{repo.repo_id}\0{parent}\0{message}\0{self._counter}".encode())
            for path in sorted(tree):
                digest.update(f"{path}\0{git_blob_sha1(tree[path])}\0".encode())
            sha = digest.hexdigest()
        date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        repo.commits[sha] = Commit(sha, tree, lfs, message, parent, date)
        repo.branches[branch] = sha
        return sha

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        if self.token is None:
            return True
        return headers.get("Authorization", "") == f"Bearer {self.token}"

    def _repo_for_read(self, repo_id: str, headers: Mapping[str, str]) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorized(headers)):
            raise HttpError(401, "Repository not found", "RepoNotFound")
        return repo

    def _require_write(self, headers: Mapping[str, str], repo_id: str | None = None) -> None:
        if not self._authorized(headers):
            raise HttpError(401, "Invalid credentials in Authorization header")
        namespace = repo_id.split("/")[0] if repo_id else None
        if namespace is not None and self.writable is not None and namespace not in self.writable:
            raise HttpError(403, f"You don't have the rights to write to {repo_id}")

    @staticmethod
    def _revision(repo: Repo, revision: str) -> Commit:
        sha = repo.resolve(revision)
        if sha is None:
            raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    def _handle(self, role: str, method: str, raw_path: str, headers: Any, body: bytes) -> Response:
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        with self._lock:
            self.requests.append((method, split.path))
        parts = [p for p in split.path.split("/") if p]
        with self._lock:
            if role == "cdn":
                return self._handle_cdn(method, parts, query, headers, body)
            if parts[:1] == ["api"]:
                return self._handle_api(method, parts[1:], query, headers, body)
            if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
                repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
                return self._resolve(repo_id, unquote(parts[3]), unquote("/".join(parts[4:])), headers)
            if len(parts) == 6 and parts[1].endswith(".git") and parts[2:5] == ["info", "lfs", "objects"]:
                repo_id = f"{unquote(parts[0])}/{unquote(parts[1])[: -len('.git')]}"
                if parts[5] == "batch" and method == "POST":
                    return self._lfs_batch(repo_id, json.loads(body or b"{}"), headers)
                if parts[5] == "verify" and method == "POST":
                    data = json.loads(body or b"{}")
                    if data.get("oid") not in self.lfs_store:
                        raise HttpError(404, f"LFS object {data.get('oid')} was not uploaded")
                    return Response.json({"success": True})
            return self._unhandled(method, split.path)

    def _unhandled(self, method: str, path: str) -> Response:
        self.unhandled.append(f"{method} {path}")
        raise HttpError(404, f"zoo test hub: no route for {method} {path}")

    # resolve / CDN
    def _resolve(self, repo_id: str, revision: str, path: str, headers: Any) -> Response:
        repo = self._repo_for_read(repo_id, headers)
        commit = self._revision(repo, revision)
        if path not in commit.files:
            raise HttpError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        data = commit.files[path]
        if path in commit.lfs:
            oid = hashlib.sha256(data).hexdigest()
            location = f"{self.cdn_url}/lfs/{oid}?repo={quote(repo_id, safe='')}&path={quote(path, safe='')}"
            return Response(
                302,
                headers={
                    "Location": location,
                    "X-Repo-Commit": commit.sha,
                    "X-Linked-Etag": f'"{oid}"',
                    "X-Linked-Size": str(len(data)),
                    "ETag": f'"{git_blob_sha1(lfs_pointer(data))}"',
                },
            )
        served = self.tampered.get((repo_id, path), data)
        response = self._bytes_response(served, headers)
        response.headers.update(
            {"ETag": f'"{git_blob_sha1(data)}"', "X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        )
        return response

    @staticmethod
    def _bytes_response(data: bytes, headers: Any) -> Response:
        range_header = headers.get("Range", "")
        if range_header.startswith("bytes=") and range_header.endswith("-"):
            start = int(range_header[len("bytes=") : -1])
            return Response(
                206,
                data[start:],
                {
                    "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
                    "Content-Type": "application/octet-stream",
                },
            )
        return Response(200, data, {"Content-Type": "application/octet-stream"})

    def _handle_cdn(
        self, method: str, parts: list[str], query: dict[str, str], headers: Any, body: bytes
    ) -> Response:
        if len(parts) == 2 and parts[0] == "lfs" and method in ("GET", "HEAD"):
            oid = parts[1]
            if oid not in self.lfs_store:
                raise HttpError(404, "NoSuchKey")
            data = self.tampered.get((query.get("repo", ""), query.get("path", "")), self.lfs_store[oid])
            response = self._bytes_response(data, headers)
            response.headers["ETag"] = f'"{oid}"'
            return response
        if len(parts) == 2 and parts[0] == "upload" and method == "PUT":
            oid = parts[1]
            if hashlib.sha256(body).hexdigest() != oid:
                raise HttpError(400, f"uploaded bytes do not hash to {oid}")
            self.lfs_store[oid] = body
            return Response(200, headers={"ETag": f'"{oid}"'})
        return self._unhandled(method, "/" + "/".join(parts))

    # API
    def _handle_api(
        self, method: str, parts: list[str], query: dict[str, str], headers: Any, body: bytes
    ) -> Response:
        if parts == ["repos", "create"] and method == "POST":
            return self._api_create_repo(json.loads(body or b"{}"), headers)
        if parts == ["validate-yaml"] and method == "POST":
            return self._api_validate_yaml(json.loads(body or b"{}"))
        if len(parts) >= 3 and parts[0] == "models":
            repo_id = f"{unquote(parts[1])}/{unquote(parts[2])}"
            rest = parts[3:]
            if not rest and method == "GET":
                return self._api_model_info(repo_id, "main", headers)
            if len(rest) >= 2:
                action, revision, sub = rest[0], unquote(rest[1]), unquote("/".join(rest[2:]))
                if action == "revision" and method == "GET" and not sub:
                    return self._api_model_info(repo_id, revision, headers)
                if action == "tree" and method == "GET":
                    return self._api_tree(
                        repo_id, revision, sub, query.get("recursive") in ("true", "True", "1"), headers
                    )
                if action == "preupload" and method == "POST":
                    return self._api_preupload(repo_id, revision, json.loads(body or b"{}"), headers)
                if action == "commit" and method == "POST":
                    return self._api_commit(repo_id, revision, body, query, headers)
                if action == "branch" and method == "POST" and not sub:
                    return self._api_branch(repo_id, revision, json.loads(body or b"{}"), headers)
        return self._unhandled(method, "/api/" + "/".join(parts))

    def _api_create_repo(self, payload: dict[str, Any], headers: Any) -> Response:
        self._require_write(headers)
        if payload.get("type") not in (None, "model"):
            raise HttpError(400, f"the zoo test hub only serves model repos, not {payload.get('type')!r}")
        repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
        if self.writable is not None and repo_id.split("/")[0] not in self.writable:
            namespace = repo_id.split("/")[0]
            raise HttpError(
                403, f'You don\'t have the rights to create a model under the namespace "{namespace}"'
            )
        if repo_id in self.repos:
            raise HttpError(
                409, "You already created this model repo", extra={"url": f"{self.url}/{repo_id}"}
            )
        private = payload.get("visibility") == "private" or payload.get("private") is True
        self._create_repo(repo_id, private=private)
        return Response.json({"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id})

    @staticmethod
    def _api_validate_yaml(payload: dict[str, Any]) -> Response:
        content = payload.get("content", "")
        if content.startswith("---"):
            end = content.find("\n---", 3)
            if end < 0:
                return Response.json({"errors": [{"message": "unterminated YAML front matter"}]}, 400)
            try:
                metadata = yaml.safe_load(content[3:end])
            except yaml.YAMLError as exc:
                return Response.json({"errors": [{"message": f"invalid YAML: {exc}"}]}, 400)
            if metadata is not None and not isinstance(metadata, dict):
                return Response.json({"errors": [{"message": "metadata must be a mapping"}]}, 400)
        return Response.json({"errors": [], "warnings": []})

    def _api_model_info(self, repo_id: str, revision: str, headers: Any) -> Response:
        repo = self._repo_for_read(repo_id, headers)
        commit = self._revision(repo, revision)
        return Response.json(
            {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.sha,
                "lastModified": commit.date,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            }
        )

    def _api_tree(self, repo_id: str, revision: str, sub: str, recursive: bool, headers: Any) -> Response:
        repo = self._repo_for_read(repo_id, headers)
        commit = self._revision(repo, revision)
        prefix = f"{sub.strip('/')}/" if sub.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in commit.files):
            raise HttpError(
                404, f"{sub} does not exist at {revision}", "EntryNotFound", {"X-Repo-Commit": commit.sha}
            )
        entries: dict[str, dict[str, Any]] = {}
        for path in sorted(commit.files):
            if not path.startswith(prefix):
                continue
            relative = PurePosixPath(path[len(prefix) :])
            folders = [prefix + "/".join(relative.parts[: i + 1]) for i in range(len(relative.parts) - 1)]
            for folder in folders if recursive else folders[:1]:
                oid = hashlib.sha1(f"tree\0{commit.sha}\0{folder}".encode()).hexdigest()
                entries.setdefault(folder, {"type": "directory", "oid": oid, "size": 0, "path": folder})
            if not recursive and len(relative.parts) > 1:
                continue
            data = commit.files[path]
            entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data)}
            if path in commit.lfs:
                pointer = lfs_pointer(data)
                entry["oid"] = git_blob_sha1(pointer)
                entry["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": len(pointer),
                }
            else:
                entry["oid"] = git_blob_sha1(data)
            entries[path] = entry
        return Response.json(list(entries.values()))

    def _api_preupload(self, repo_id: str, revision: str, payload: dict[str, Any], headers: Any) -> Response:
        self._require_write(headers, repo_id)
        repo = self._repo_for_read(repo_id, headers)
        commit = self._revision(repo, revision)
        answers = []
        for item in payload.get("files", []):
            path, size = item["path"], int(item["size"])
            mode = "lfs" if default_is_lfs(path, size) and size > 0 else "regular"
            oid = None
            if path in commit.files:
                existing = commit.files[path]
                oid = hashlib.sha256(existing).hexdigest() if path in commit.lfs else git_blob_sha1(existing)
            answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return Response.json({"files": answers, "commitOid": commit.sha})

    def _lfs_batch(self, repo_id: str, payload: dict[str, Any], headers: Any) -> Response:
        self._require_write(headers, repo_id)
        self._repo_for_read(repo_id, headers)
        if payload.get("operation") != "upload":
            raise HttpError(400, "the zoo test hub only accepts LFS uploads")
        objects = []
        for obj in payload.get("objects", []):
            answer: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_store:
                answer["actions"] = {
                    "upload": {"href": f"{self.cdn_url}/upload/{obj['oid']}"},
                    "verify": {"href": f"{self.url}/{repo_id}.git/info/lfs/objects/verify"},
                }
            objects.append(answer)
        return Response.json({"transfer": "basic", "objects": objects})

    def _api_commit(
        self, repo_id: str, revision: str, body: bytes, query: dict[str, str], headers: Any
    ) -> Response:
        self._require_write(headers, repo_id)
        repo = self._repo_for_read(repo_id, headers)
        if revision not in repo.branches:
            raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        pr_url = None
        if query.get("create_pr"):  # a pull request is the ref refs/pr/N, opened from the branch's head
            number = 1 + sum(1 for name in repo.branches if name.startswith("refs/pr/"))
            repo.branches[f"refs/pr/{number}"] = repo.branches[revision]
            revision, pr_url = f"refs/pr/{number}", f"{self.url}/{repo_id}/discussions/{number}"
        parent = repo.commits[repo.branches[revision]]
        tree, lfs = dict(parent.files), set(parent.lfs)
        message = "Update"
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value.get("summary") or message
                expected = value.get("parentCommit")
                if expected and expected != parent.sha:
                    raise HttpError(
                        412, f"parent commit {expected} is not the head of {revision} ({parent.sha})"
                    )
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HttpError(400, f"unsupported encoding {value.get('encoding')!r}")
                tree[value["path"]] = base64.b64decode(value["content"])
                lfs.discard(value["path"])
            elif key == "lfsFile":
                if value["oid"] not in self.lfs_store:
                    raise HttpError(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                tree[value["path"]] = self.lfs_store[value["oid"]]
                lfs.add(value["path"])
            elif key == "deletedFile":
                if value["path"] not in tree:
                    raise HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
                tree.pop(value["path"])
                lfs.discard(value["path"])
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                for path in [p for p in tree if p.startswith(folder)]:
                    tree.pop(path)
                    lfs.discard(path)
            else:
                raise HttpError(400, f"unknown commit operation {key!r}")
        sha = self._new_commit(repo, revision, tree, frozenset(lfs), message, None)
        return Response.json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.url}/{repo_id}/commit/{sha}",
                "hookOutput": "",
                "pullRequestUrl": pr_url,
            }
        )

    def _api_branch(self, repo_id: str, branch: str, payload: dict[str, Any], headers: Any) -> Response:
        self._require_write(headers, repo_id)
        repo = self._repo_for_read(repo_id, headers)
        if branch in repo.branches:
            raise HttpError(409, f"Branch {branch} already exists")
        start = self._revision(repo, payload.get("startingPoint") or "main")
        repo.branches[branch] = start.sha
        return Response.json({"success": True})


@pytest.fixture
def hub_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A running local Hub with the ``huggingface_hub`` client pointed at it and a fresh cache under tmp_path."""
    server = HubServer().start()
    try:
        server.patch_client(monkeypatch, tmp_path / "hf-home")
        yield server
    finally:
        server.stop()
