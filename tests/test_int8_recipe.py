"""One INT8 recipe (issue 39, item 3): the search and ``export --precision int8`` draw their calibration images
with one function and one seed offset, so a subnet the search re-measured quantized is exported quantized on
the same tensors and its file gives the search's top-1."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from attentivenas.accuracy import Int8SubnetEvaluator, SubnetEvaluator, resolve_data, score_predictions
from attentivenas.accuracy.int8_data import draw_int8_images
from attentivenas.config import INT8_CALIB_SEED_OFFSET, Int8Config, Int8Recipe, MeasureSettings, SearchConfig
from attentivenas.errors import ConfigError
from attentivenas.nn import Supernet, save_supernet
from attentivenas.runtimes import quantize
from attentivenas.space import TINY_SPACE, resolve_arch

from .cli_helpers import run_cli


def test_the_recipe_defaults_are_the_quantizers() -> None:
    recipe = Int8Recipe()
    assert (recipe.calib_count(), recipe.check_images, recipe.max_drop) == (
        quantize.DEFAULT_CALIB_IMAGES, quantize.DEFAULT_CHECK_IMAGES, quantize.DEFAULT_MAX_INT8_DROP)
    assert recipe.calib_seed(3) == 3 + INT8_CALIB_SEED_OFFSET == Int8Config().calib_seed(3)
    assert "calib_seed_offset" not in SearchConfig().to_dict()["int8"]  # one value, not a key to diverge on
    search = SearchConfig.model_validate({"int8": {"runtime": "openvino", "calib_images": 32}}).int8
    full = Int8Recipe(**search.model_dump(), check_split="holdout", check_images=20)  # the search's, with a check
    assert (full.runtime, full.calib_count(), full.check_split, full.check_images) == ("openvino", 32, "holdout", 20)
    with pytest.raises(ConfigError, match="check_images"):
        _parse({"check_images": -1})
    with pytest.raises(ConfigError, match="check_split"):
        _parse({"check_split": "val"})


def _parse(data: dict) -> Int8Recipe:
    from attentivenas.config import parse_model

    return parse_model(Int8Recipe, data)


def test_the_images_are_seeded_and_the_check_a_subset_of_its_split() -> None:
    bundle = resolve_data("digits", TINY_SPACE, {})
    recipe = Int8Recipe(calib_images=8, check_split="holdout", check_images=12)
    a, b = draw_int8_images(bundle, recipe, 3), draw_int8_images(bundle, recipe, 3)
    assert a.calib.shape == (8, 3, 32, 32) and a.calib.dtype == torch.float32 and a.calib.is_contiguous()
    assert torch.equal(a.calib, b.calib) and a.check_data is not None and b.check_data is not None
    assert torch.equal(a.check_data[0], b.check_data[0]) and a.check_data[0].shape[0] == 12
    assert not torch.equal(a.calib, draw_int8_images(bundle, recipe, 4).calib)  # the seed matters
    holdout = {tuple(bundle.val[i][0].flatten()[:16].tolist()) for i in range(len(bundle.val))}
    assert all(tuple(x.flatten()[:16].tolist()) in holdout for x in a.check_data[0])
    assert draw_int8_images(bundle, recipe.model_copy(update={"check_images": 0}), 3).check_data is None
    assert draw_int8_images(bundle, Int8Config(calib_images=8), 3).check_data is None  # the search's: no check


@pytest.mark.slow  # two real ONNX Runtime quantizations of the smallest subnet and the file's check: 20-35 s
def test_search_and_export_quantize_on_the_same_images(tmp_path: Path) -> None:
    """The subnet re-measured by the search (``Int8SubnetEvaluator``) and the same subnet written by
    ``export --precision int8``: the file's logits are the search's (the same calibration tensors and BN
    statistics; before this recipe the export drew other images, a 0.05 logit gap on this subnet), and its
    top-1 on the whole hold-out is the search's."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    ckpt = save_supernet(tmp_path / "tiny.pt", Supernet(TINY_SPACE, 10))
    arch = dataclasses.replace(resolve_arch("min", TINY_SPACE), resolution=32)  # the digits' resolution
    settings = MeasureSettings(split="holdout", calib_batches=1, calib_batch_size=32, calib_seed=3, batch_size=64)
    base = SubnetEvaluator.from_checkpoint(ckpt, data="digits", settings=settings, device="cpu", warn=lambda _: None)
    search = Int8SubnetEvaluator(base, Int8Config(calib_images=8), threads=1)
    out = tmp_path / "q.onnx"
    r = run_cli("export", "--checkpoint", str(ckpt), "--arch", json.dumps(arch.to_dict()), "--data", "digits",
                "--format", "onnx", "--precision", "int8", "--calib-batches", "1", "--calib-batch-size", "32",
                "--calib-seed", "3", "--calib-images", "8", "--check-split", "holdout", "--check-images", "10000",
                "--out", str(out), "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)["files"][0]
    images = torch.cat([x for x, _ in base.loader_for(arch)])
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    exported = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: images.numpy()})[0])
    _, predict = search.quantized(arch)
    searched = predict(images)
    scale = float(searched.abs().max())
    assert torch.allclose(exported, searched, atol=1e-4 * scale), float((exported - searched).abs().max())
    assert info["check_images"] == len(images)  # the whole hold-out: the search's evaluation images
    # the search's INT8 top-1 (Int8SubnetEvaluator.evaluate scores this predict on these batches)
    assert info["top1_int8"] == pytest.approx(score_predictions(predict, base.loader_for(arch))["top1"], abs=1e-6)
