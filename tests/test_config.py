"""Config schema, YAML loading, key=value overrides and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from attentivenas.config import (
    TrainConfig,
    apply_overrides,
    load_config,
    override_config,
    parse_config,
    parse_override,
    save_config,
)
from attentivenas.errors import ConfigError, UserError

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
IMAGENET = ROOT / "configs" / "attentivenas_imagenet.yaml"


def test_defaults_follow_the_recipe() -> None:
    c = TrainConfig()
    assert (c.optim.lr, c.optim.lr_reference_batch, c.optim.epochs, c.optim.warmup_epochs) == (0.1, 256, 360, 5.0)
    assert (c.sampler.method, c.sampler.k, c.sampler.num_middle, c.sampler.bin_width) == ("bestup", 3, 2, 25.0)
    assert (c.model.bn_momentum, c.model.dropout, c.model.drop_connect) == (0.0, 0.2, 0.2)


def test_imagenet_config_is_the_full_recipe() -> None:
    c = load_config(IMAGENET, ["data.path=/data/imagenet"])
    assert c.data.path == "/data/imagenet" and c.data.name == "imagenet"
    assert (c.data.batch_size, c.optim.lr, c.optim.lr_reference_batch) == (32, 0.1, 256)
    assert (c.optim.epochs, c.optim.warmup_epochs, c.optim.momentum, c.optim.nesterov) == (360, 5.0, 0.9, True)
    assert (c.optim.weight_decay, c.optim.no_decay_bn_bias, c.optim.grad_clip_value) == (1e-5, True, 1.0)
    assert (c.loss.label_smoothing, c.loss.distill, c.loss.temperature) == (0.1, "kd", 1.0)
    assert (c.loss.alpha_min, c.loss.alpha_max, c.loss.iw_clip) == (-1.0, 1.0, 5.0)
    assert (c.model.dropout, c.model.drop_connect, c.model.drop_connect_only_last_two_stages) == (0.2, 0.2, True)
    assert (c.model.bn_momentum, c.model.bn_eps) == (0.0, 1e-5)
    s = c.sampler
    assert (s.method, s.k, s.num_middle, s.prior, s.bin_width, s.constraint, s.estimator) == (
        "bestup", 3, 2, "empirical", 25.0, "flops", "loss")
    assert c.eval.calib_batches == 64
    # the authors' data, augmentation and init (reference section 8): all of train/, timm's v0, PyTorch's init
    assert (c.data.val_fraction, c.eval.split, c.data.auto_augment, c.data.augment_magnitude_std) == (
        0.0, "test", "v0", 0.5)
    assert (c.data.interpolation, c.data.image_size, c.data.eval_resize, c.model.init) == (
        "bicubic", 224, 256, "pytorch")
    assert c.space == "attentivenas"


@pytest.mark.parametrize(("name", "calibration_seed"), [("attentivenas_imagenet.yaml", 2),
                                                        ("alphanet_imagenet.yaml", 5)])
def test_imagenet_recipes_train_as_the_authors(name: str, calibration_seed: int) -> None:
    """fp32, their init (zeroed last BN of each block), their LR rule and WarmupCosineLR (warmup_lr
    0.001, clamp 0), the calibration seed of their evaluation config."""
    c = load_config(ROOT / "configs" / name, ["data.path=/data/imagenet"])
    assert (c.runtime.amp, c.model.init, c.model.zero_init_residual) == ("none", "pytorch", True)
    o = c.optim
    assert (o.lr_scaling, o.schedule, o.warmup_start_factor, o.min_lr) == ("authors", "authors", 0.001, 0.0)
    assert c.eval.calibration_seed == calibration_seed
    assert load_config(ROOT / "configs" / name, ["data.path=/x", "runtime.amp=bf16"]).runtime.amp == "bf16"


@pytest.mark.parametrize("path", [QUICKSTART, ROOT / "configs" / "fashion_mnist.yaml",
                                  ROOT / "src" / "attentivenas" / "configs" / "quickstart.yaml"])
def test_small_configs_keep_their_schedule_init_and_calibration(path: Path) -> None:
    """The measured small-data results rest on these: linear scaling, cosine after the warm-up, the
    run's seed for the calibration batches, kaiming init with zeroed last BN."""
    c = load_config(path)
    assert (c.optim.lr_scaling, c.optim.schedule, c.optim.warmup_start_factor, c.optim.min_lr) == (
        "linear", "warmup_then_cosine", 0.0, 0.0)
    assert (c.eval.calibration_seed, c.model.init, c.model.zero_init_residual) == (None, "kaiming_fan_out", True)


def test_imagenet_config_requires_the_dataset_path() -> None:
    with pytest.raises(ConfigError, match=r"data\.path is required"):
        load_config(IMAGENET)


def test_quickstart_config_is_tiny_digits_bestup() -> None:
    c = load_config(QUICKSTART)
    assert (c.space, c.data.name, c.data.image_size) == ("tiny", "digits", 32)
    assert (c.sampler.method, c.sampler.k, c.sampler.estimator) == ("bestup", 3, "loss")
    assert c.optim.epochs * 40 <= 600  # a few hundred steps at most on a CPU (546: about four minutes)


def test_online_predictor_quickstart_config() -> None:
    c = load_config(ROOT / "configs" / "quickstart_online_predictor.yaml")
    assert (c.space, c.sampler.method, c.sampler.estimator, c.optim.epochs) == ("tiny", "bestup", "online", 3)
    on = c.sampler.online
    assert (on.start_epoch, on.refit_every, on.num_archs, on.kinds, on.folds, on.calibration_batches) == (
        1, 1, 40, ["ridge", "rf"], 5, 4)
    mine, quick = c.model_dump(exclude={"sampler"}), load_config(QUICKSTART).model_dump(exclude={"sampler"})
    mine["optim"].pop("epochs"), quick["optim"].pop("epochs")  # 3 epochs: two fits of the online predictor
    assert mine == quick


def test_overrides_are_typed_by_yaml() -> None:
    c = load_config(QUICKSTART, ["optim.lr=0.05", "sampler.k=5", "runtime.amp=bf16", "log.tensorboard=false",
                                 "model.num_classes=null", "sampler.target_min=1.5"])
    assert c.optim.lr == 0.05 and c.sampler.k == 5 and c.runtime.amp == "bf16"
    assert c.log.tensorboard is False and c.model.num_classes is None and c.sampler.target_min == 1.5


def test_parse_override_splits_keys_and_values() -> None:
    assert parse_override("a.b.c=[1, 2]") == (["a", "b", "c"], [1, 2])
    assert parse_override("x=hello=world") == (["x"], "hello=world")
    assert parse_override("x=") == (["x"], None)
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("optim.lr")
    with pytest.raises(ConfigError, match="empty key"):
        parse_override("optim..lr=1")


def test_apply_overrides_creates_sections_and_copies() -> None:
    base = {"optim": {"lr": 0.1}}
    out = apply_overrides(base, ["optim.epochs=3", "sampler.k=2"])
    assert out == {"optim": {"lr": 0.1, "epochs": 3}, "sampler": {"k": 2}}
    assert base == {"optim": {"lr": 0.1}}
    with pytest.raises(ConfigError, match="'optim.lr' is a value, not a section"):
        apply_overrides(base, ["optim.lr.x=1"])


def test_unknown_key_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'sampler\.kk'; did you mean 'sampler\.k'"):
        load_config(QUICKSTART, ["sampler.kk=3"])
    with pytest.raises(ConfigError, match=r"unknown config key 'optimizer'"):
        parse_config({"optimizer": {}})


def test_wrong_type_and_range_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"'optim\.lr'.*valid number.*'fast'"):
        load_config(QUICKSTART, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"'sampler\.k'.*greater than or equal to 1"):
        load_config(QUICKSTART, ["sampler.k=0"])
    with pytest.raises(ConfigError, match=r"'sampler\.method'.*'uniform', 'bestup' or 'worstup'.*'topk'"):
        load_config(QUICKSTART, ["sampler.method=topk"])
    with pytest.raises(ConfigError, match=r"'data\.batch_size'"):
        load_config(QUICKSTART, ["data.batch_size=2.5"])
    with pytest.raises(ConfigError, match=r"'optim\.schedule'.*'warmup_then_cosine' or 'authors'"):
        load_config(QUICKSTART, ["optim.schedule=cosine"])
    with pytest.raises(ConfigError, match=r"'optim\.lr_scaling'.*'linear' or 'authors'"):
        load_config(QUICKSTART, ["optim.lr_scaling=sqrt"])
    with pytest.raises(ConfigError, match=r"'eval\.calibration_seed'"):
        load_config(QUICKSTART, ["eval.calibration_seed=-1"])


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigError, match=r"sampler\.predictor .* is required"):
        parse_config({"sampler": {"estimator": "predictor"}})
    with pytest.raises(ConfigError, match=r"loss\.alpha_min \(0\.5\) must not exceed"):
        parse_config({"loss": {"alpha_min": 0.5, "alpha_max": 0.0}})
    with pytest.raises(ConfigError, match=r"sampler\.target_min .* must be below"):
        parse_config({"sampler": {"target_min": 3, "target_max": 2}})


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(lst)
    assert issubclass(ConfigError, UserError)


def test_online_predictor_and_memory_prior_configs_round_trip(tmp_path: Path) -> None:
    c = load_config(QUICKSTART, ["sampler.estimator=online", "sampler.online.start_epoch=2",
                                 "sampler.online.kinds=[rf, lgbm]", "sampler.constraint=memory",
                                 "sampler.bin_width=null"])
    on = c.sampler.online
    assert (on.start_epoch, on.refit_every, on.kinds, c.sampler.bin_width) == (2, 1, ["rf", "lgbm"], None)
    assert load_config(save_config(c, tmp_path / "config.yaml")) == c
    assert load_config(QUICKSTART, ["sampler.constraint=params", "sampler.bin_width=null"]).sampler.bin_width == 0.25


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    c = load_config(QUICKSTART, ["optim.lr=0.3", "sampler.k=4"])
    path = save_config(c, tmp_path / "config.yaml")
    again = load_config(path)
    assert again == c
    assert override_config(c, ["seed=7"]).seed == 7 and c.seed == 0


def test_search_config_file_lists_every_key_with_its_default() -> None:
    from attentivenas.config import SearchConfig, load_search_config, read_yaml

    path = Path(__file__).resolve().parents[1] / "configs" / "search.yaml"
    assert load_search_config(path) == SearchConfig()
    assert read_yaml(path) == SearchConfig().to_dict()  # every key is written out


def test_every_shipped_config_loads() -> None:
    from attentivenas.config import load_config

    root = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(root.glob("*.yaml")):
        if path.name == "search.yaml":
            continue
        cfg = load_config(path, ["data.path=/data/imagenet"] if "imagenet" in path.name else [])
        assert cfg.optim.epochs >= 1, path
    alphanet = load_config(root / "alphanet_imagenet.yaml", ["data.path=/data/imagenet"])
    assert (alphanet.loss.distill, alphanet.sampler.method) == ("alpha_divergence", "uniform")
    assert (alphanet.loss.alpha_min, alphanet.loss.alpha_max, alphanet.loss.iw_clip) == (-1.0, 1.0, 5.0)

