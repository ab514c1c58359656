"""zoo_core.hub against the real huggingface_hub client talking to a local Hub server (tests/hubserver.py)."""

from __future__ import annotations

import hashlib
import logging
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the hubserver helper
pytest_plugins = ["hubserver"]

from zoo_core import hub, weights  # noqa: E402
from zoo_core.cards import ModelCard  # noqa: E402
from zoo_core.config import Config  # noqa: E402
from zoo_core.errors import ChecksumError, WeightsError  # noqa: E402
from zoo_core.model import Model  # noqa: E402

REPO = "org/tiny"
CONFIG = b'{"_zoo_architecture": "toy.linear", "width": 3}'
MODEL_V1 = b"model-v1-" + bytes(range(256)) * 4
MODEL_V2 = b"model-v2-" + bytes(range(255, -1, -1)) * 4


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(hub_server):
    """The Hub server with one repo (a zoo model at the root, a diffusers-like unet/ and vae/) in two commits."""
    hub_server.old = hub_server.add_repo(
        REPO,
        {
            "config.json": CONFIG,
            "model.safetensors": MODEL_V1,
            "unet/config.json": b'{"sample_size": 8}',
            "unet/diffusion_pytorch_model.safetensors": b"unet-weights" * 50,
            "vae/config.json": b'{"latent_channels": 4}',
            "ckpt/netG_1200.pth": b"pth-bytes" * 10,
        },
    )
    hub_server.new = hub_server.commit(REPO, {"model.safetensors": MODEL_V2}, message="retrain")
    yield hub_server
    assert hub_server.unhandled == [], "the client called endpoints the test Hub does not implement"


def no_hub_warnings(records: list[warnings.WarningMessage]) -> bool:
    return not [r for r in records if issubclass(r.category, hub.HubUnreachableWarning)]


def files_in_cache(cache: Path) -> dict[str, bytes]:
    """Content of every regular file in the Hub cache (blobs), to look for poisoned bytes."""
    return {str(p): p.read_bytes() for p in cache.rglob("*") if p.is_file() and not p.is_symlink()}


# -- download ---------------------------------------------------------------------------------------------------------
def test_download_repo_gives_the_snapshot_with_every_file_and_lfs_through_the_cdn(server):
    path = hub.download(f"hf://{REPO}")
    assert (path / "config.json").read_bytes() == CONFIG
    assert (path / "model.safetensors").read_bytes() == MODEL_V2
    assert (path / "unet" / "config.json").read_bytes() == b'{"sample_size": 8}'
    assert path.name == server.new and server.cache_dir in path.parents
    assert (path / "model.safetensors").is_symlink()  # the normal Hub cache layout: snapshot -> blob
    assert server.is_lfs(REPO, "model.safetensors") and not server.is_lfs(REPO, "config.json")
    assert any(p.startswith("/lfs/") for _, p in server.requests), "LFS bytes come from the CDN host"


def test_download_of_a_subfolder_fetches_only_that_folder(server):
    path = hub.download(f"hf://{REPO}/unet")
    assert path.name == "unet" and path.parent.name == server.new
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["unet"]  # nothing else was downloaded
    assert (path / "diffusion_pytorch_model.safetensors").read_bytes() == b"unet-weights" * 50


def test_allow_patterns_are_relative_to_the_subfolder(server):
    path = hub.download(f"hf://{REPO}/unet", allow_patterns=["*.json"])
    assert [p.name for p in path.iterdir()] == ["config.json"]


def test_one_named_file_is_fetched_alone_without_listing_the_repo(server):
    server.clear_requests()
    path = hub.download(f"hf://{REPO}", allow_patterns=["config.json"])
    assert path.name == server.new and [p.name for p in path.iterdir()] == ["config.json"]
    assert not [p for _, p in server.requests if "/tree/" in p]  # hf_hub_download, not snapshot_download


def test_a_source_naming_a_file_resolves_to_that_file(server):
    path = hub.download(f"hf://{REPO}/ckpt/netG_1200.pth")
    assert path.is_file() and path.read_bytes() == b"pth-bytes" * 10


def test_revision_pinning_gets_the_bytes_of_that_commit_branch_or_tag(server):
    server.create_branch(REPO, "dev", server.old)
    dev = server.commit(REPO, {"config.json": b'{"dev": true}'}, revision="dev")
    server.tag(REPO, "v1", server.old)

    old = hub.download(f"hf://{REPO}", revision=server.old)
    assert (old / "model.safetensors").read_bytes() == MODEL_V1
    assert (hub.download(f"hf://{REPO}") / "model.safetensors").read_bytes() == MODEL_V2
    tagged = hub.download(f"hf://{REPO}@v1")
    assert tagged == old
    branch = hub.download(f"hf://{REPO}@dev")
    assert branch.name == dev and (branch / "config.json").read_bytes() == b'{"dev": true}'
    assert (branch / "model.safetensors").read_bytes() == MODEL_V1
    # an explicit revision (card / --revision) wins over the source's @revision
    assert hub.download(f"hf://{REPO}@dev", revision="main").name == server.new


def test_a_cached_pinned_commit_needs_no_network_even_with_the_hub_down(server):
    first = hub.download(f"hf://{REPO}", revision=server.old)
    server.clear_requests()
    assert hub.download(f"hf://{REPO}", revision=server.old) == first
    assert server.requests == []
    server.stop()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        again = hub.download(f"hf://{REPO}", revision=server.old, sha256={"model.safetensors": sha(MODEL_V1)})
    assert again == first and (again / "model.safetensors").read_bytes() == MODEL_V1
    assert no_hub_warnings(records)


def test_hf_hub_offline_uses_the_cache_and_names_the_fix_when_nothing_is_cached(server, monkeypatch):
    online = hub.download(f"hf://{REPO}/unet")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at call time, not only at import
    server.clear_requests()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        assert hub.download(f"hf://{REPO}/unet") == online
    assert server.requests == [] and no_hub_warnings(records)
    with pytest.raises(WeightsError) as err:
        hub.download(f"hf://{REPO}/vae")
    message = str(err.value)
    for words in ("hf://org/tiny@main/vae", "HF_HUB_OFFLINE", "zoo download", "HF_HOME", "weights="):
        assert words in message
    assert server.requests == []


def test_unreachable_hub_falls_back_to_the_cache_with_one_warning(server, caplog):
    cached = hub.download(f"hf://{REPO}")
    server.stop()
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        path = hub.download(f"hf://{REPO}")
    ours = [r for r in records if issubclass(r.category, hub.HubUnreachableWarning)]
    assert len(ours) == 1 and len(records) == 1
    assert server.new in str(ours[0].message) and "Cannot reach" in str(ours[0].message)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # nothing else shouts
    assert path == cached and (path / "model.safetensors").read_bytes() == MODEL_V2

    server.start()  # the Hub is back, with a new commit: it is used, without a warning
    newest = server.commit(REPO, {"config.json": b"{}"})
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        assert hub.download(f"hf://{REPO}").name == newest
    assert no_hub_warnings(records)


def test_unreachable_hub_without_cache_fails_fast_naming_the_fix(server):
    server.stop()
    start = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        hub.download(f"hf://{REPO}")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "cannot be reached" in message and server.url in message
    for words in ("not in the Hugging Face cache", "zoo download", "HF_HOME", "weights="):
        assert words in message


def test_unknown_repo_revision_and_file_are_clear_errors(server):
    with pytest.raises(WeightsError, match=r"'org/nope' was not found.*hf auth login"):
        hub.download("hf://org/nope")
    with pytest.raises(WeightsError, match=r"'org/tiny' has no revision 'v9'.*revision"):
        hub.download(f"hf://{REPO}@v9")
    with pytest.raises(WeightsError, match=r"'org/tiny' has no revision"):
        hub.download(f"hf://{REPO}", revision="0" * 40)
    with pytest.raises(WeightsError, match=r"File 'missing.bin' is not in .*'org/tiny' at revision 'main'"):
        hub.download(f"hf://{REPO}", allow_patterns=["missing.bin"])
    with pytest.raises(
        WeightsError, match=r"no file of org/tiny .* matches nothere/\*.*holds: .*config.json"
    ):
        hub.download(f"hf://{REPO}/nothere")
    with pytest.raises(WeightsError, match="not a valid Hub source"):
        hub.download("hf://org/not valid")


def test_private_repo_needs_the_token(server, monkeypatch):
    server.add_repo("org/secret", {"config.json": b"{}"}, private=True)
    assert (hub.download("hf://org/secret") / "config.json").read_bytes() == b"{}"
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(WeightsError, match="private"):
        hub.download("hf://org/secret", revision=server.resolve("org/secret"), allow_patterns=["x.json"])


# -- checksums ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["model.safetensors", "config.json"], ids=["lfs", "regular"])
def test_checksum_mismatch_is_rejected_and_leaves_nothing_in_the_cache(server, name):
    good = server.files(REPO)[name]
    bad = bytes(b ^ 0xFF for b in good)  # same size: only the checksum can tell
    server.tamper(REPO, name, bad)
    with pytest.raises(ChecksumError) as err:
        weights.resolve(f"hf://{REPO}", sha256={name: sha(good)})
    assert (
        name in str(err.value)
        and sha(bad) in str(err.value)
        and "removed from the Hugging Face cache" in str(err.value)
    )
    snapshot = server.cache_dir / "models--org--tiny" / "snapshots" / server.new  # the standard cache layout
    assert (snapshot / "unet" / "config.json").exists()  # only the failing file left
    assert not (snapshot / name).exists() and not (snapshot / name).is_symlink()
    assert bad not in files_in_cache(server.cache_dir).values()

    server.untamper(REPO, name)  # the Hub serves the right bytes again: the next call downloads them
    path = weights.resolve(f"hf://{REPO}", sha256={name: sha(good)})
    assert (path / name).read_bytes() == good


def test_a_poisoned_cache_entry_is_evicted_and_downloaded_again(server, caplog):
    server.tamper(REPO, "model.safetensors", bytes(len(MODEL_V2)))
    poisoned = hub.download(f"hf://{REPO}")  # no checksum given: the bad bytes land in the cache
    assert (poisoned / "model.safetensors").read_bytes() == bytes(len(MODEL_V2))
    server.untamper(REPO, "model.safetensors")
    caplog.set_level(logging.WARNING, logger="zoo_core.hub")
    path = hub.download(f"hf://{REPO}", sha256={"model.safetensors": sha(MODEL_V2)})
    assert (path / "model.safetensors").read_bytes() == MODEL_V2
    assert "failed its checksum" in caplog.text


def test_checksum_mismatch_offline_evicts_and_says_to_download_again(server, monkeypatch):
    hub.download(f"hf://{REPO}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ChecksumError, match="Download it again when the Hub is reachable"):
        hub.download(f"hf://{REPO}", sha256={"config.json": "0" * 64})
    with pytest.raises(WeightsError, match="Only part of hf://org/tiny@main"):  # the bad file is not trusted
        hub.download(f"hf://{REPO}")


def test_checksum_of_a_file_the_download_left_out_is_an_error(server):
    with pytest.raises(WeightsError, match="missing: the card lists a checksum for 'model.safetensors'"):
        hub.download(
            f"hf://{REPO}", allow_patterns=["config.json"], sha256={"model.safetensors": sha(MODEL_V2)}
        )


# -- push -------------------------------------------------------------------------------------------------------------
class ToyConfig(Config):
    width: int = 3


class Toy(Model):
    architecture = "toy.linear"
    config_class = ToyConfig

    def __init__(self, config=None):
        super().__init__(config)
        self.proj = nn.Linear(self.config.width, self.config.width)


def saved_toy(tmp_path: Path, **card: object) -> tuple[Toy, Path]:
    torch.manual_seed(0)
    model = Toy({"width": 4})
    model.card = ModelCard(
        name="toy-digits",
        family="toy",
        plugin="tests",
        architecture="toy.linear",
        description="A toy for the Hub round trip.",
        license="Apache-2.0",
        **card,
    )
    return model, model.save_pretrained(tmp_path / "saved")


def front_matter(readme: bytes) -> dict:
    text = readme.decode()
    assert text.startswith("---\n")
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


def test_push_uploads_the_directory_with_a_generated_model_card(server, tmp_path):
    model, directory = saved_toy(tmp_path, weights={"source": "hf://google/ddpm-cifar10-32"})
    url = hub.push(directory, "org/pushed", commit_message="first upload")
    assert url == f"{server.url}/org/pushed"
    files = server.files("org/pushed")
    assert sorted(files) == [".gitattributes", "README.md", "card.json", "config.json", "model.safetensors"]
    assert files["model.safetensors"] == (directory / "model.safetensors").read_bytes()
    assert server.is_lfs("org/pushed", "model.safetensors") and not server.is_lfs("org/pushed", "config.json")
    assert server.repo("org/pushed").commits[server.resolve("org/pushed")].message == "first upload"
    assert front_matter(files["README.md"]) == {
        "library_name": "zoo",
        "tags": ["zoo", "toy", "toy.linear"],
        "license": "apache-2.0",
        "base_model": "google/ddpm-cifar10-32",
        "pipeline_tag": "unconditional-image-generation",
    }
    assert 'zoo.load("hf://org/pushed")' in files["README.md"].decode()
    assert not (directory / "README.md").exists()  # the user's folder is left as it was

    loaded = Toy.from_pretrained("hf://org/pushed")  # and it comes back through the Hub cache
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_push_to_a_branch_keeps_main_and_keeps_a_users_readme(server, tmp_path):
    _, directory = saved_toy(tmp_path)
    hub.push(directory, "org/pushed")
    main_files = server.files("org/pushed")
    (directory / "README.md").write_text("My own notes.\n")
    (directory / "config.json").write_text('{"_zoo_architecture": "toy.linear", "width": 4, "note": 1}')
    url = hub.push(directory, "org/pushed", revision="dev", private=True)
    assert url.endswith("/org/pushed/tree/dev")
    assert server.files("org/pushed") == main_files
    dev = server.files("org/pushed", "dev")
    assert b'"note": 1' in dev["config.json"]
    readme = dev["README.md"].decode()
    assert readme.endswith("My own notes.\n") and front_matter(dev["README.md"])["library_name"] == "zoo"
    assert "license" in front_matter(dev["README.md"]) and "base_model" not in front_matter(dev["README.md"])


def test_push_without_a_token_says_how_to_log_in(server, tmp_path, monkeypatch):
    _, directory = saved_toy(tmp_path)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(WeightsError, match=r"Not allowed to push to 'org/pushed'.*hf auth login"):
        hub.push(directory, "org/pushed")


def test_push_refuses_a_folder_that_is_not_a_saved_model(server, tmp_path):
    with pytest.raises(WeightsError, match="save_pretrained"):
        hub.push(tmp_path, "org/pushed")


def test_zoo_push_command(server, tmp_path, capsys):
    from zoo_core.cli import main

    _, directory = saved_toy(tmp_path)
    assert main(["push", str(directory), "org/cli", "--message", "from the CLI"]) == 0
    assert capsys.readouterr().out.strip() == f"{server.url}/org/cli"
    assert server.repo("org/cli").commits[server.resolve("org/cli")].message == "from the CLI"


def test_model_card_metadata_for_text_to_image_and_unknown_licenses():
    meta = hub.model_card_metadata(
        {"family": "latent", "architecture": "latent.sd", "license": "CreativeML OpenRAIL-M", "tags": ["sd"]},
        {"unet": {"cross_attention_dim": 768}},
        "org/sd",
    )
    assert meta["pipeline_tag"] == "text-to-image"
    assert meta["license"] == "creativeml-openrail-m" and meta["tags"] == ["zoo", "latent", "latent.sd", "sd"]
    meta = hub.model_card_metadata({"license": "My License 1.0"}, {"_zoo_architecture": "ddpm.unet"}, "org/x")
    assert meta["license"] == "other" and meta["license_name"] == "my-license-1.0"
    assert meta["tags"] == ["zoo", "ddpm", "ddpm.unet"]
    assert meta["pipeline_tag"] == "unconditional-image-generation" and "base_model" not in meta


def test_zoo_download_fetches_and_verifies_a_cards_weights(server, tmp_path, monkeypatch, capsys):
    from zoo_core.cli import main

    def card(name: str, digest: str) -> dict:
        return {
            "name": name,
            "family": "toy",
            "plugin": "tests",
            "architecture": "toy.linear",
            "weights": {
                "source": f"hf://{REPO}",
                "revision": server.old,
                "files": ["*.json", "model.safetensors"],
                "sha256": {"model.safetensors": digest},
            },
        }

    registry = tmp_path / "cards.yaml"
    registry.write_text(
        yaml.safe_dump({"models": [card("tiny-hub", sha(MODEL_V1)), card("tiny-bad", "ab" * 32)]})
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    custom = tmp_path / "custom-cache"
    assert main(["download", "tiny-hub", "--cache-dir", str(custom)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert custom.resolve() in path.parents and path.name == server.old
    assert sorted(p.name for p in path.rglob("*") if p.is_file()) == [
        "config.json",
        "config.json",
        "config.json",
        "model.safetensors",
    ]
    assert (path / "model.safetensors").read_bytes() == MODEL_V1
    assert not any(server.cache_dir.iterdir())  # the default cache was not touched

    assert main(["download", "tiny-bad", "--cache-dir", str(custom)]) == 2
    assert "Checksum mismatch for 'model.safetensors'" in capsys.readouterr().err
    assert not (path / "model.safetensors").exists()


def test_offline_and_not_cached_names_the_zoo_download_command_of_the_card(
    server, tmp_path, monkeypatch, capsys
):
    from zoo_core.cli import main

    card = {
        "name": "tiny-offline",
        "family": "toy",
        "plugin": "tests",
        "architecture": "toy.linear",
        "weights": {"source": f"hf://{REPO}", "revision": server.old},
    }
    registry = tmp_path / "cards.yaml"
    registry.write_text(yaml.safe_dump({"models": [card]}))
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["download", "tiny-offline"]) == 2
    err = capsys.readouterr().err
    assert (
        "`zoo download tiny-offline`" in err
        and "HF_HUB_OFFLINE" in err
        and len(err.strip().splitlines()) == 1
    )
    with pytest.raises(WeightsError, match=r"`zoo download hf://org/tiny/unet`"):
        hub.download(f"hf://{REPO}/unet")  # no card: the source itself is what to download
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert main(["download", f"hf://{REPO}/unet"]) == 0  # `zoo download` takes a source too
    path = Path(capsys.readouterr().out.strip())
    assert path.name == "unet" and path.parent.name == server.new


def test_pushed_card_parses_with_huggingface_hub_and_the_model_comes_back_bit_for_bit(
    server, tmp_path, monkeypatch
):
    import huggingface_hub

    import zoo

    model = zoo.load("ddpm")  # the embedded digits model: its card holds metrics with their commands
    directory = model.save_pretrained(tmp_path / "ddpm-digits")
    hub.push(directory, "org/ddpm-digits")
    files = server.files("org/ddpm-digits")
    (tmp_path / "README.md").write_bytes(files["README.md"])
    card = huggingface_hub.ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "zoo" and card.data.pipeline_tag == "unconditional-image-generation"
    assert card.data.license == "apache-2.0" and card.data.datasets == ["sklearn digits"]
    measured = {m.name: m.value for m in model.card.metrics if m.command}
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert measured and results == measured
    assert {r.dataset_name for r in card.data.eval_results} == {"sklearn digits"}
    assert all(f"`{m.command}`" in card.text for m in model.card.metrics if m.command)
    assert card.data.model_name == "ddpm" and "## Measured" in card.text

    expected = model.state_dict()
    for loaded in (
        zoo.load("hf://org/ddpm-digits"),  # through the snapshot, architecture read from config.json
        _load_through_a_card(tmp_path, monkeypatch, files["model.safetensors"]),
    ):
        assert loaded.state_dict().keys() == expected.keys()
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())


def _load_through_a_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_bytes: bytes) -> Model:
    import zoo
    from zoo_core.registry import reset_registry

    card = zoo.info("ddpm").model_dump(mode="json", exclude={"source"})
    card["name"] = "ddpm-pushed"
    card["weights"] = {"source": "hf://org/ddpm-digits", "sha256": {"model.safetensors": sha(weights_bytes)}}
    registry = tmp_path / "pushed.yaml"
    registry.write_text(yaml.safe_dump({"models": [card]}))
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    reset_registry()  # read ZOO_REGISTRY again
    try:
        return zoo.load("ddpm-pushed")
    finally:
        monkeypatch.delenv("ZOO_REGISTRY")
        reset_registry()


def test_push_as_a_pull_request_leaves_main_alone(server, tmp_path):
    _, directory = saved_toy(tmp_path)
    hub.push(directory, "org/pr")
    main_before = server.resolve("org/pr")
    (directory / "config.json").write_text('{"_zoo_architecture": "toy.linear", "width": 4, "pr": 1}')
    url = hub.push(directory, "org/pr", create_pr=True, commit_message="suggest a change")
    assert url == f"{server.url}/org/pr/discussions/1"
    assert server.resolve("org/pr") == main_before
    assert b'"pr": 1' in server.files("org/pr", "refs/pr/1")["config.json"]
    with pytest.raises(WeightsError, match="--create-pr opens a pull request against main"):
        hub.push(directory, "org/pr", create_pr=True, revision="dev")


def test_push_with_a_token_flag_and_without_any_token(server, tmp_path, monkeypatch, capsys):
    from zoo_core.cli import main

    _, directory = saved_toy(tmp_path)
    monkeypatch.delenv("HF_TOKEN")
    server.clear_requests()
    assert main(["push", str(directory), "org/flag"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no Hugging Face token found" in err and "--token" in err and len(err.splitlines()) == 1
    assert server.requests == [] and "org/flag" not in server.repos  # refused before any upload
    assert main(["push", str(directory), "org/flag", "--token", server.token]) == 0
    assert "model.safetensors" in server.files("org/flag")


def test_push_to_a_repo_without_rights_gives_the_hubs_message_and_uploads_nothing(server, tmp_path, capsys):
    from zoo_core.cli import main

    _, directory = saved_toy(tmp_path)
    server.add_repo("other/locked", {"config.json": b"{}"})
    server.writable = {"org", "zoo-tester"}
    before = dict(server.repo("other/locked").commits)
    blobs = set(server.lfs_store)
    assert main(["push", str(directory), "other/locked"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "Not allowed to push to 'other/locked'" in err and "don't have the rights" in err and "403" in err
    assert server.repo("other/locked").commits == before and set(server.lfs_store) == blobs
    assert main(["push", str(directory), "other/new"]) == 2  # creating a repo there is refused too
    assert 'under the namespace "other"' in capsys.readouterr().err and "other/new" not in server.repos
