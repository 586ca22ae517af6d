"""Run configs: presets, overrides, validation messages and the run identity hash."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

import pytest

from aplab.config import RunConfig, apply, config_hash, from_dict, from_flat, load_yaml, parse_override
from aplab.errors import ConfigError
from aplab.config.resolve import resolve


def cfg_with(**flat) -> RunConfig:
    cfg = RunConfig()
    for key, value in flat.items():
        apply(cfg, key.replace("__", "."), value)
    return cfg


def test_cifar10_defaults_are_the_papers_settings():
    cfg = resolve(cfg_with(data__name="cifar10", loss__name="nce+rce", noise__spec="symmetric:0.4"))
    assert (cfg.model.name, cfg.optim.epochs, cfg.optim.lr, cfg.optim.weight_decay) == ("cnn8", 120, 0.01, 1e-4)
    assert (cfg.optim.batch_size, cfg.optim.momentum, cfg.optim.grad_clip, cfg.optim.schedule) == (128, 0.9, 5.0, "cosine")
    assert (cfg.loss.alpha, cfg.loss.beta) == (1.0, 1.0) and cfg.data.augment == "crop_flip"


def test_presets_follow_the_code_by_default_and_the_paper_text_on_request():
    code = resolve(cfg_with(data__name="mnist", loss__name="nce+rce"))
    paper = resolve(cfg_with(data__name="mnist", loss__name="nce+rce", loss__fidelity="paper"))
    assert (code.loss.alpha, code.loss.beta) == (1.0, 10.0)
    assert (paper.loss.alpha, paper.loss.beta) == (1.0, 100.0)
    assert resolve(cfg_with(data__name="cifar100")).model.name == "resnet50"
    assert resolve(cfg_with(data__name="cifar100", loss__fidelity="paper")).model.name == "resnet34"
    c100 = resolve(cfg_with(data__name="cifar100", loss__name="ngce+mae"))
    assert (c100.loss.alpha, c100.loss.beta, c100.loss.q, c100.optim.lr) == (10.0, 1.0, 0.7, 0.1)  # official configs
    assert resolve(cfg_with(data__name="cifar100", loss__name="ngce+mae", loss__fidelity="paper")).loss.beta == 0.1
    sce = resolve(cfg_with(data__name="cifar100", loss__name="sce"))
    assert (sce.loss.alpha, sce.loss.beta) == (6.0, 0.1)
    web = resolve(cfg_with(data__name="webvision_mini", loss__name="nce+mae"))
    assert (web.loss.alpha, web.loss.beta, web.optim.nesterov, web.optim.batch_size) == (50.0, 1.0, True, 512)


def test_explicit_values_win_over_presets():
    cfg = resolve(cfg_with(data__name="cifar10", loss__name="nce+rce", loss__beta=10.0, optim__epochs=3))
    assert cfg.loss.beta == 10.0 and cfg.optim.epochs == 3 and cfg.loss.alpha == 1.0


def test_parameters_a_loss_does_not_take_are_rejected():
    with pytest.raises(ValueError, match=r"^loss.alpha=2.0 .*takes"):
        resolve(cfg_with(loss__name="ce", loss__alpha=2.0))


def test_overrides_are_typed_and_unknown_keys_list_the_choices():
    assert parse_override("optim.lr=0.05") == ("optim.lr", 0.05)
    assert parse_override("data.clean_val=true") == ("data.clean_val", True)
    with pytest.raises(ValueError, match=r"^config key='optim.lrr'.*optim.lr.*did you mean 'optim.lr'"):
        apply(RunConfig(), "optim.lrr", 0.1)
    with pytest.raises(ValueError, match=r"^optim.epochs='ten' .*integer"):
        apply(RunConfig(), "optim.epochs", "ten")
    with pytest.raises(ValueError, match=r"^--set="):
        parse_override("optim.lr")


@pytest.mark.parametrize("field, value, expected", [
    ("data.name", "cifar11", "did you mean 'cifar10'"),
    ("model.name", "cnn5", "cnn4"),
    ("loss.name", "nce+rcee", "rcee"),
    ("noise.spec", "symmetric:1.5", "[0, 1)"),
    ("optim.epochs", 0, ">= 1"),
    ("runtime.precision", "fp16", "bf16"),
])
def test_bad_values_name_the_field_and_what_is_allowed(field, value, expected):
    cfg = RunConfig()
    apply(cfg, field, value)
    with pytest.raises(ValueError) as err:
        resolve(cfg)
    assert str(err.value).startswith(f"{field}=") and expected in str(err.value)


def test_yaml_files_load_and_malformed_yaml_names_the_file(tmp_path):
    good = tmp_path / "run.yaml"
    good.write_text("data:\n  name: digits\nloss:\n  name: gce\n  q: 0.5\n")
    cfg = from_dict(load_yaml(good))
    assert cfg.loss.name == "gce" and cfg.loss.q == 0.5
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [name: digits\n")
    with pytest.raises(ValueError, match=r"^config file='.*bad.yaml line"):
        load_yaml(bad)
    with pytest.raises(ValueError, match="config key"):
        from_dict({"data": {"nme": "digits"}})


def test_config_hash_is_the_identity_of_the_results():
    base = resolve(cfg_with(loss__name="nce+rce", noise__spec="symmetric:0.4"))
    same = resolve(cfg_with(loss__name="nce+rce", noise__spec="symmetric:0.4", tracking__experiment="other",
                            runtime__eval_batch_size=7))
    other_seed = resolve(cfg_with(loss__name="nce+rce", noise__spec="symmetric:0.4", runtime__seed=1))
    assert config_hash(base) == config_hash(same)
    assert config_hash(base) != config_hash(other_seed)
    assert len(config_hash(base)) == 16


def test_unset_fields_do_not_enter_the_identity():
    from aplab.config import identity

    cfg = resolve(cfg_with(loss__name="ce"))
    assert cfg.loss.alpha is None and "loss.alpha" not in identity(cfg)
    assert identity(cfg)["loss.name"] == "ce"


# ---------------------------------------------------------------- the resolved config: frozen, resolved once


def test_a_resolved_config_is_frozen_and_the_input_is_left_alone():
    raw = cfg_with(data__name="cifar10", loss__name="nce+rce")
    cfg = resolve(raw)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.loss.name = "ce"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim = RunConfig().optim
    with pytest.raises(dataclasses.FrozenInstanceError):
        apply(cfg, "optim.lr", 0.5)
    assert cfg.loss.name == "nce+rce" and cfg.optim.lr == 0.01
    assert raw.model.name is None and raw.optim.epochs is None  # resolve filled a copy


def test_a_derived_config_is_mutable_and_resolves_to_the_same_identity():
    cfg = resolve(cfg_with(loss__name="gce", noise__spec="symmetric:0.2"))
    derived = from_flat(cfg.flat())
    apply(derived, "runtime.seed", 3)
    assert derived.runtime.seed == 3 and cfg.runtime.seed == 0
    assert config_hash(resolve(from_flat(cfg.flat()))) == config_hash(cfg)
    assert resolve(from_flat(cfg.flat())).to_dict() == cfg.to_dict()


def test_resolve_of_a_resolved_config_returns_it_without_building_the_loss(monkeypatch):
    import aplab.losses

    builds = []
    real_build = aplab.losses.build

    def counting_build(*args, **kwargs):
        builds.append(args[0])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(aplab.losses, "build", counting_build)
    cfg = resolve(cfg_with(data__name="cifar10", loss__name="nce+rce"))
    assert builds == ["nce+rce"]  # one probe build per resolve, not two
    assert resolve(cfg) is cfg
    assert builds == ["nce+rce"]


def test_a_resolved_config_stays_resolved_and_frozen_across_processes():
    cfg = resolve(cfg_with(loss__name="sce", noise__spec="symmetric:0.4"))
    copy = pickle.loads(pickle.dumps(cfg))  # what a pipeline worker process receives
    assert copy == cfg and resolve(copy) is copy
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.loss.alpha = 1.0


@pytest.mark.parametrize("name", ["resnet999", "resnet", "seresnet18x"])
def test_model_names_outside_the_rule_fail_at_resolve_in_one_line(name):
    with pytest.raises(ConfigError) as err:
        resolve(cfg_with(model__name=name))
    assert err.value.field == "model.name" and "\n" not in str(err.value)
    assert str(err.value).startswith(f"model.name='{name}' is not allowed")


def test_a_timm_resnet_outside_the_registry_resolves_as_build_model_accepts_it():
    assert resolve(cfg_with(data__name="cifar10", model__name="seresnet18")).model.name == "seresnet18"


@pytest.mark.parametrize("step_size, message", [(None, "an integer >= 1"), (0, "an integer >= 1")])
def test_the_step_schedule_needs_a_step_size(step_size, message):
    cfg = cfg_with(optim__schedule="step", optim__step_size=step_size)
    with pytest.raises(ConfigError) as err:
        resolve(cfg)
    assert err.value.field == "optim.step_size" and message in str(err.value)


def test_a_step_size_is_only_for_the_step_schedule():
    assert resolve(cfg_with(optim__schedule="step", optim__step_size=60, optim__lr_decay=0.1)).optim.step_size == 60
    assert resolve(cfg_with(optim__schedule="cosine")).optim.step_size is None
    with pytest.raises(ConfigError) as err:
        resolve(cfg_with(optim__schedule="cosine", optim__step_size=60))
    assert err.value.field == "optim.step_size" and "unset" in str(err.value)


def test_bad_data_fields_are_checked_by_the_data_package():
    with pytest.raises(ConfigError, match=r"^data.augment='crop_flp'.*did you mean 'crop_flip'"):
        resolve(cfg_with(data__augment="crop_flp"))
    with pytest.raises(ConfigError, match=r"^data.val_fraction=1.0 "):
        resolve(cfg_with(data__val_fraction=1.0))


def test_resolving_a_small_cnn_run_imports_neither_timm_nor_torchvision():
    code = ("import sys; import aplab.cli.flags, aplab.config.resolve; print('torch' in sys.modules); "
            "from aplab.config import RunConfig; aplab.config.resolve.resolve(RunConfig()); import aplab.train; "
            "print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["False", "[]"]  # argument parsing needs no torch; a cnn4 run needs no timm


def test_each_loss_parameter_is_declared_once_in_loss_config():
    from aplab.config import LOSS_PARAMS, LossConfig
    from aplab.losses.zoo import RULES
    from aplab.pipeline.spec import LOSS_KEYS

    assert LOSS_PARAMS == ("alpha", "beta", "gamma", "q", "ln_neg", "a", "p", "delta", "lamb", "min_prob", "scale",
                           "m", "tau", "t1", "t2", "order", "epsilon", "smooth_rate", "pi", "rho", "freq", "margin")
    # source_sha256: filled by resolve for a module:attr loss (its source file), refused set on a registered one
    assert LOSS_KEYS == ("name", *LOSS_PARAMS, "fidelity", "source_sha256") == tuple(
        f.name for f in dataclasses.fields(LossConfig))
    assert set(LOSS_PARAMS) <= set(RULES)  # every parameter a config can set has a rule in the loss zoo
