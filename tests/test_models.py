"""Models: exact sizes from the layer definitions, shapes, layer order, stems, init, dtype/layout."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from aplab.errors import ConfigError
from aplab.models import available_models, build_model, model_factory


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # weight + bias (running stats are buffers, not parameters)


def linear(fin: int, fout: int) -> int:
    return fin * fout + fout


# ---------------------------------------------------------------- cnn4 / cnn8: sizes and shapes


@pytest.mark.parametrize(("image_size", "side", "total"), [(28, 7, 422_090), (8, 2, 53_450)])
def test_cnn4_parameter_count_by_hand(image_size: int, side: int, total: int) -> None:
    expected = (
        (3 * 3 * 1 * 32 + 32) + 2 * 32  # conv 1->32 + BN
        + (3 * 3 * 32 * 64 + 64) + 2 * 64  # conv 32->64 + BN
        + (64 * side * side * 128 + 128) + 2 * 128  # linear -> 128 + BN1d
        + (128 * 10 + 10)  # linear -> K
    )
    model = build_model("cnn4", 10, 1, image_size)
    assert n_params(model) == expected
    assert n_params(model) == total  # pinned: 422,090 at MNIST's 28 px


@pytest.mark.parametrize(("image_size", "side"), [(32, 4), (8, 1)])
def test_cnn8_parameter_count_by_hand(image_size: int, side: int) -> None:
    expected = (
        conv(3, 64) + bn(64) + conv(64, 64) + bn(64)
        + conv(64, 128) + bn(128) + conv(128, 128) + bn(128)
        + conv(128, 196) + bn(196) + conv(196, 196) + bn(196)
        + linear(196 * side * side, 256) + bn(256)
        + linear(256, 10)
    )
    assert n_params(build_model("cnn8", 10, 3, image_size)) == expected


@pytest.mark.parametrize(
    ("name", "channels", "size", "classes"),
    [("cnn4", 1, 8, 10), ("cnn4", 1, 28, 10), ("cnn4", 3, 32, 7), ("cnn8", 3, 32, 10), ("cnn8", 1, 8, 5),
     ("cnn8", 3, 28, 100)],
)
def test_cnn_output_shape(name: str, channels: int, size: int, classes: int) -> None:
    model = build_model(name, classes, channels, size).eval()
    with torch.no_grad():
        out = model(torch.randn(3, channels, size, size))
    assert out.shape == (3, classes)


def leaf_types(model: nn.Module) -> list[type]:
    return [type(m) for m in model.modules() if not list(m.children())]


def test_cnn4_layer_order() -> None:
    block = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    head = [nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert leaf_types(build_model("cnn4", 10, 1, 28)) == block * 2 + head


def test_cnn8_layer_order_widths_and_no_dropout() -> None:
    model = build_model("cnn8", 10, 3, 32)
    unit = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    head = [nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert leaf_types(model) == (unit * 2 + [nn.MaxPool2d]) * 3 + head
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (3, 64), (64, 64), (64, 128), (128, 128), (128, 196), (196, 196)
    ]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.stride == (1, 1) for c in convs)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(196 * 4 * 4, 256), (256, 10)]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert all(p.kernel_size == 2 and p.stride == 2 for p in pools)


def test_cnn_too_small_image_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        build_model("cnn8", 10, 3, 4)  # three max-pools need at least 8 px
    assert err.value.field == "model.image_size"


# ---------------------------------------------------------------- init


def test_cnn8_init_matches_authors_convention() -> None:
    torch.manual_seed(0)
    model = build_model("cnn8", 10, 3, 32)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            fan_in, fan_out = m.in_features, m.out_features
            bound = math.sqrt(6.0 / (fan_in + fan_out))  # xavier-uniform
        elif isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            bound = math.sqrt(2.0) * math.sqrt(3.0 / fan_in)  # kaiming-uniform, gain sqrt(2) for ReLU
        else:
            continue
        w = m.weight.detach()
        assert w.abs().max() <= bound + 1e-7
        assert w.abs().max() >= 0.95 * bound  # actually spread over the whole interval
        assert w.std().item() == pytest.approx(bound / math.sqrt(3.0), rel=0.1)  # U(-b, b) std
        # biases: PyTorch default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), left as the authors left them
        assert m.bias.detach().abs().max() <= 1.0 / math.sqrt(fan_in) + 1e-7
        assert m.bias.detach().abs().max() > 0


# ---------------------------------------------------------------- timm ResNets


def resnet18_body(in_ch: int, stem_kernel: int) -> int:
    """ResNet-18 parameters without the classifier, from its layer definitions."""

    def block(cin: int, cout: int) -> int:
        down = conv(cin, cout, 1, bias=False) + bn(cout) if cin != cout else 0
        return conv(cin, cout, bias=False) + bn(cout) + conv(cout, cout, bias=False) + bn(cout) + down

    stem = conv(in_ch, 64, stem_kernel, bias=False) + bn(64)
    stages = 0
    for cin, cout in [(64, 64), (64, 128), (128, 256), (256, 512)]:
        stages += block(cin, cout) + block(cout, cout)
    return stem + stages


def test_resnet18_standard_stem_at_224_px() -> None:
    model = build_model("resnet18", 10, 3, 224).eval()
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, nn.MaxPool2d)
    assert n_params(model) == resnet18_body(3, 7) + linear(512, 10)
    assert n_params(model) == 11_181_642  # torchvision's 11,689,512 minus 990 classes of head
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_resnet18_cifar_stem_at_32_px() -> None:
    model = build_model("resnet18", 100, 3, 32).eval()
    c = model.conv1
    assert isinstance(c, nn.Conv2d)
    assert (c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) == (3, 64, (3, 3), (1, 1), (1, 1))
    assert c.bias is None
    assert isinstance(model.maxpool, nn.Identity)
    assert n_params(model) == resnet18_body(3, 3) + linear(512, 100)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_resnet_stem_threshold_and_in_channels() -> None:
    at_64 = build_model("resnet18", 10, 1, 64)
    at_65 = build_model("resnet18", 10, 1, 65)
    assert at_64.conv1.kernel_size == (3, 3) and isinstance(at_64.maxpool, nn.Identity)
    assert at_65.conv1.kernel_size == (7, 7) and isinstance(at_65.maxpool, nn.MaxPool2d)
    assert at_64.conv1.in_channels == 1 and at_65.conv1.in_channels == 1


def test_other_timm_resnet_through_same_factory() -> None:
    model = build_model("resnet10t", 4, 3, 16).eval()  # deep "t" stem (conv1 is a Sequential in timm)
    assert isinstance(model.conv1, nn.Conv2d) and model.conv1.kernel_size == (3, 3)
    assert model.conv1.out_channels == model.bn1.num_features
    assert isinstance(model.maxpool, nn.Identity)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_resnets_never_ask_for_pretrained_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    calls: list[dict] = []
    real = timm.create_model

    def spy(name: str, **kwargs: object) -> nn.Module:
        calls.append({"name": name, **kwargs})
        return real(name, **kwargs)

    monkeypatch.setattr(timm, "create_model", spy)
    build_model("resnet18", 7, 2, 32)
    assert calls == [{"name": "resnet18", "pretrained": False, "num_classes": 7, "in_chans": 2}]


# ---------------------------------------------------------------- registry and errors


def test_registry_lists_the_paper_models() -> None:
    assert {"cnn4", "cnn8", "resnet18", "resnet34", "resnet50"} <= set(available_models())


@pytest.mark.parametrize("name", available_models())
def test_every_listed_model_builds_and_maps_images_to_logits(name: str) -> None:
    model = build_model(name, 3, 3, 16).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)


@pytest.mark.parametrize("name", ["resnet999", "resnet", "vgg16", "cnn5", "seresnet18x"])
def test_model_name_rule_refuses_names_outside_registry_and_timm_resnets(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        model_factory(name)
    assert err.value.field == "model.name" and err.value.value == name
    assert "\n" not in str(err.value) and "timm's resnet module" in str(err.value)
    with pytest.raises(ConfigError):
        build_model(name, 10, 3, 32)  # build_model follows the same rule


def test_model_name_rule_accepts_other_timm_resnets_in_both_places() -> None:
    assert "seresnet18" not in available_models()
    model_factory("seresnet18")  # what resolve checks
    model = build_model("seresnet18", 5, 3, 16).eval()
    assert any("SEModule" in type(m).__name__ or "SqueezeExcite" in type(m).__name__ for m in model.modules())
    with torch.no_grad():
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)


def test_the_model_flag_help_states_the_rule() -> None:
    from aplab.cli.flags import flag_help
    from aplab.models import OTHER_MODELS

    text = flag_help("model")
    assert all(name in text for name in available_models())
    assert OTHER_MODELS.removeprefix("or ") in text


def test_registered_models_are_built_without_importing_timm_or_torchvision() -> None:
    code = ("import sys; from aplab.models import build_model, model_factory; model_factory('cnn8'); "
            "build_model('cnn4', 10, 1, 8); print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_model_name_is_a_config_error_with_suggestion() -> None:
    with pytest.raises(ConfigError) as err:
        build_model("resnet-18", 10, 3, 32)
    assert err.value.field == "model.name"
    assert "did you mean 'resnet18'" in str(err.value)
    assert "cnn8" in str(err.value)


@pytest.mark.parametrize(("field", "args"), [("model.num_classes", (0, 3, 32)), ("model.in_channels", (10, 0, 32)),
                                             ("model.image_size", (10, 3, -1))])
def test_non_positive_sizes_are_config_errors(field: str, args: tuple[int, int, int]) -> None:
    with pytest.raises(ConfigError) as err:
        build_model("cnn8", *args)
    assert err.value.field == field


# ---------------------------------------------------------------- channels_last and bf16 autocast


def test_channels_last_and_bf16_autocast() -> None:
    torch.manual_seed(0)
    model = build_model("cnn8", 10, 3, 8).eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out_cl = model_cl(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf16 = model_cl(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out_cl, ref, atol=1e-5, rtol=1e-5)
    assert out_bf16.dtype == torch.bfloat16 and out_bf16.shape == (4, 10)
    assert torch.allclose(out_bf16.float(), ref, atol=0.1 * ref.abs().max().item() + 0.05)


def test_the_classifier_head_stays_float32_under_bf16_autocast():
    from aplab.models import Float32Linear, float32_head

    torch.manual_seed(0)
    model = float32_head(build_model("cnn8", 10, 3, 32)).eval()
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert type(head) is Float32Linear
    features = {}
    head.register_forward_hook(lambda module, args, out: features.update(x=args[0]))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.float32
    expected = features["x"].float() @ head.weight.T + head.bias  # the head's input may be bf16, its math is not
    torch.testing.assert_close(logits, expected)
    assert set(model.state_dict()) == set(build_model("cnn8", 10, 3, 32).state_dict())  # checkpoints unchanged


def test_the_float32_head_keeps_the_parameters_and_draws_no_random_numbers():
    """The head is swapped in with public API (``set_submodule``), built on the meta device: the optimiser sees
    the very same Parameter objects in the same order, and the run's random stream is untouched."""
    from aplab.models import Float32Linear, float32_head

    torch.manual_seed(0)
    model = build_model("cnn8", 10, 3, 32).train()
    before = [(name, id(p)) for name, p in model.named_parameters()]
    state = torch.random.get_rng_state()
    float32_head(model)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert [(name, id(p)) for name, p in model.named_parameters()] == before
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert type(head) is Float32Linear and head.training
    assert sum(type(m) is torch.nn.Linear for m in model.modules()) == 1  # cnn8's other Linear, untouched
