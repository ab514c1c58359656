"""zoo eval: torchmetrics cross-checks, known answers, reading samples from .npz and folders, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zoo_core import cli
from zoo_core.data.digits import DigitsDataset
from zoo_core.metrics.features import DigitFeatures, extract
from zoo_core.metrics.frechet import frechet_distance_features
from zoo_core.metrics.standard import Reference, compute_metrics, fid_from_features, kid_from_features

torchmetrics = pytest.importorskip("torchmetrics")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))


def _features(seed: int, n: int = 300, d: int = 16, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, d, generator=g, dtype=torch.float64)
        @ torch.randn(d, d, generator=g, dtype=torch.float64)
    ) + shift


def test_our_frechet_equals_torchmetrics_fid():
    real, fake = _features(0), _features(1, n=200, shift=0.3)
    ours = frechet_distance_features(real, fake)
    package = fid_from_features(Reference.from_features("r", real), fake)
    assert package == pytest.approx(ours, rel=1e-3) and ours > 1


def test_fid_kid_on_identical_and_disjoint_sets():
    real = _features(0)
    ref = Reference.from_features("r", real)
    assert abs(fid_from_features(ref, real.clone())) < 1e-6 * float(real.var(0).sum())
    assert fid_from_features(ref, real + 50.0) > 16 * 50.0**2 * 0.99  # |mu difference|^2 dominates
    kid_same, _ = kid_from_features(real, real.clone(), subset_size=100)
    kid_far, _ = kid_from_features(real, real + 50.0, subset_size=100)
    assert abs(kid_same) < 1e-3 * kid_far and kid_far > 0
    # the subsets come from a seeded generator: the same call gives the same figure
    assert kid_from_features(real, _features(2), 100) == kid_from_features(real, _features(2), 100)


def test_statistics_only_reference_gives_the_same_fid():
    real, fake = _features(0), _features(3, n=120, shift=0.1)
    full = Reference.from_features("r", real)
    stats = Reference("r", None, full.mu, full.sigma, full.n)
    assert fid_from_features(stats, fake) == pytest.approx(fid_from_features(full, fake), rel=1e-9)
    with pytest.raises(ValueError, match="only mu and sigma"):
        compute_metrics(stats, fake, ["fid", "kid"])


def test_digit_features_plugged_into_torchmetrics_directly_agree():
    from torchmetrics.image.fid import FrechetInceptionDistance

    real = DigitsDataset(16, "train").images[:300]
    fake = (
        DigitsDataset(16, "test").images[:200].flip(-1)
    )  # mirrored digits: clearly not the same distribution
    metric = FrechetInceptionDistance(feature=DigitFeatures(), normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    extractor = DigitFeatures()
    ours = fid_from_features(Reference.from_features("r", extract(extractor, real)), extract(extractor, fake))
    assert float(metric.compute()) == pytest.approx(ours, rel=1e-4) and ours > 10


def _uint8(images: torch.Tensor) -> np.ndarray:
    from zoo_core.images import to_uint8

    return to_uint8(images)


def _eval(*args: str) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["eval", *args, "--json"]) == 0
    return json.loads(out.getvalue())


def test_eval_reads_npz_and_folder_alike_and_caches_the_reference(tmp_path):
    from PIL import Image

    real = DigitsDataset(16, "test").images[:120]
    array = _uint8(real)
    np.savez(tmp_path / "s.npz", array)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, a in enumerate(array):
        Image.fromarray(a[..., 0]).save(folder / f"{i:06d}.png")
    from_npz = _eval(str(tmp_path / "s.npz"), "--reference", "digits")
    from_folder = _eval(str(folder), "--reference", "digits", "--n", "120")
    for key in ("fid", "kid", "precision", "recall"):
        assert from_npz[key] == pytest.approx(from_folder[key], rel=1e-9)
    assert from_npz["n"] == 120 and from_npz["features"] == "digits" and from_npz["source"] == "npz"
    cache = from_npz["reference_cache"]
    assert cache and (tmp_path / "cache").as_posix() in cache
    # real digits against real digits: close; the same images with their strokes inverted: far
    np.savez(tmp_path / "inv.npz", 255 - array)
    inverted = _eval(str(tmp_path / "inv.npz"), "--metrics", "fid,recall")
    assert inverted["fid"] > 10 * from_npz["fid"] and inverted["recall"] < from_npz["recall"]
    assert set(inverted) >= {"fid", "recall"} and "kid" not in inverted
    # the card entries carry the command that measured them
    entry = from_npz["card_metrics"][0]
    assert entry["name"] == "fid_digits" and entry["command"].startswith("zoo eval ")
    # a statistics .npz (the cache file itself) is a reference too
    again = _eval(str(tmp_path / "s.npz"), "--reference", cache, "--features", "digits")
    assert again["fid"] == pytest.approx(from_npz["fid"], rel=1e-6)


def test_eval_samples_a_model(tmp_path):
    result = _eval("example-gaussian-digits", "--n", "40", "--steps", "5", "--metrics", "fid,precision")
    assert result["source"] == "model" and result["n"] == 40 and result["steps"] == 5
    assert result["fid"] > 0 and 0 <= result["precision"] <= 1 and result["seconds_per_image"] > 0


def _fails(capsys, *args: str) -> str:
    assert cli.main(["eval", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_eval_bad_input_is_one_line_exit_2(tmp_path, capsys):
    from PIL import Image

    np.savez(tmp_path / "s.npz", np.zeros((8, 16, 16, 1), np.uint8))
    s = str(tmp_path / "s.npz")
    assert "Did you mean 'fid'" in _fails(capsys, s, "--metrics", "fdi")
    assert "at least 2 samples" in _fails(capsys, s, "--n", "1")
    assert "no such directory" in _fails(capsys, s, "--reference", str(tmp_path / "nowhere"))
    assert "--features digits does not describe the shapes reference" in _fails(
        capsys, s, "--reference", "shapes", "--features", "digits"
    )
    assert "fewer than --n 20" in _fails(capsys, s, "--n", "20")
    assert "larger than the 8 samples" in _fails(capsys, s, "--kid-subset-size", "50")
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.new("L", (16, 16)).save(bad / "000000.png")
    Image.new("L", (8, 8)).save(bad / "000001.png")
    assert "000001.png is 8x8" in _fails(capsys, str(bad))
    (bad / "000001.png").unlink()
    (bad / "000001.txt").write_text("not an image")
    assert "000001.txt is not an image" in _fails(capsys, str(bad))
    ref = tmp_path / "ref"
    ref.mkdir()
    Image.new("RGB", (32, 32)).save(ref / "a.png")
    assert "--resize" in _fails(capsys, s, "--reference", str(ref), "--features", "digits")


def test_inception_without_torch_fidelity_names_the_extra(tmp_path, capsys):
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    if _TORCH_FIDELITY_AVAILABLE:
        pytest.skip("torch-fidelity is installed")
    np.savez(tmp_path / "s.npz", np.zeros((8, 16, 16, 1), np.uint8))
    assert "zoo-core[inception]" in _fails(capsys, str(tmp_path / "s.npz"), "--features", "inception")


def test_zoo_eval_fid_equals_the_digits_evaluators_frechet():
    from zoo_core.metrics.digits_eval import evaluate_digit_samples
    from zoo_core.metrics.standard import load_reference

    images = DigitsDataset(16, "test").images[:150]
    ours = evaluate_digit_samples(images)["frechet_distance"]
    extractor = DigitFeatures()
    reference = load_reference("digits", "digits", extractor, (1, 16, 16))
    assert reference.n == 1797
    assert fid_from_features(reference, extract(extractor, images)) == pytest.approx(ours, rel=1e-3)


def test_shapes_features_separate_real_from_altered_shapes():
    from zoo_core.data.shapes import ShapesDataset
    from zoo_core.metrics.features import ShapesFeatures

    extractor = ShapesFeatures()
    a = extract(extractor, ShapesDataset(150, 16, seed=0).as_tensors()[0])
    b_images = ShapesDataset(150, 16, seed=1).as_tensors()[0]
    assert a.shape == (150, extractor.num_features)
    same = fid_from_features(Reference.from_features("a", a), extract(extractor, b_images))
    swapped = fid_from_features(Reference.from_features("a", a), extract(extractor, b_images.flip(1)))  # BGR
    assert swapped > 3 * same
