"""The lesson's convolutional autoencoder: code and output shapes, ranges, and the downsampling case."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from components.config import ModelConfig
from components.corruption import model_input_shape
from components.models import ConvAutoencoder, build_model, parameter_count
from components.presets import load_config


def _images(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_lesson_network_has_the_8x4x4_code_on_28x28() -> None:
    model = build_model(ModelConfig(channels=[16, 8, 8]), (1, 28, 28), (1, 28, 28)).eval()
    assert isinstance(model, ConvAutoencoder)
    x = _images((5, 1, 28, 28))
    with torch.no_grad():
        code = model.encoder(x)
        out = model(x)
    assert code.shape == (5, 8, 4, 4)
    assert out.shape == (5, 1, 28, 28)
    assert out.min() >= 0.0 and out.max() <= 1.0
    with torch.no_grad():
        assert torch.allclose(out, model.decode(model.encode(x)))
        assert torch.allclose(out, torch.sigmoid(model.decoder(code)))


def test_rgb_32x32() -> None:
    model = build_model(ModelConfig(channels=[16, 8, 8]), (3, 32, 32), (3, 32, 32)).eval()
    with torch.no_grad():
        code = model.encoder(_images((2, 3, 32, 32)))
        out = model(_images((2, 3, 32, 32)))
    assert code.shape == (2, 8, 4, 4)
    assert out.shape == (2, 3, 32, 32)
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("side", [16, 28, 30, 33])
@pytest.mark.parametrize("kernel", [3, 5])
def test_output_size_equals_input_size_for_any_side(side: int, kernel: int) -> None:
    model = build_model(ModelConfig(channels=[4, 4, 4], kernel_size=kernel), (1, side, side), (1, side, side))
    with torch.no_grad():
        assert model(_images((2, 1, side, side))).shape == (2, 1, side, side)


def test_downsampled_input_is_decoded_to_full_size_through_build_model() -> None:
    cfg = load_config(
        overrides=[
            "data.image_size=28",
            "corruption.kind=downsample",
            "corruption.factor=2",
            "model.channels=[16, 8, 8]",
        ]
    )
    image_shape = (1, cfg.data.image_size, cfg.data.image_size)
    input_shape = model_input_shape(cfg.corruption, image_shape)
    assert input_shape == (1, 14, 14)
    model = build_model(cfg.model, input_shape, image_shape).eval()
    with torch.no_grad():
        out = model(_images((3, *input_shape)))
    assert out.shape == (3, *image_shape)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_parameter_count_is_positive_and_grows_with_width() -> None:
    small = build_model(ModelConfig(channels=[4, 4]), (1, 16, 16), (1, 16, 16))
    large = build_model(ModelConfig(channels=[16, 8]), (1, 16, 16), (1, 16, 16))
    assert parameter_count(small) > 0
    assert parameter_count(small) == parameters_to_vector(small.parameters()).numel()
    assert parameter_count(large) > parameter_count(small)


def test_every_parameter_gets_a_gradient() -> None:
    model = build_model(ModelConfig(channels=[8, 4]), (1, 16, 16), (1, 16, 16))
    x = _images((4, 1, 16, 16))
    torch.nn.functional.binary_cross_entropy_with_logits(model.decode_logits(model.encode(x)), x).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert any(float(p.grad.abs().sum()) > 0 for p in model.parameters() if p.grad is not None)


def test_unknown_model_kind_is_refused() -> None:
    cfg = ModelConfig.model_construct(kind="transformer")  # unvalidated, to reach build_model's own check
    with pytest.raises(ValueError, match="transformer"):
        build_model(cfg, (1, 16, 16), (1, 16, 16))


def test_pooling_before_relu_is_the_lessons_relu_then_pool() -> None:
    """ConvStack pools before its ReLU for speed; outputs and gradients must equal the lesson's order."""
    from torch import nn

    from components.models.blocks import ConvStack

    torch.manual_seed(0)
    stack = ConvStack(1, [4, 3], 3)
    convs = [layer for layer in stack.layers if isinstance(layer, nn.Conv2d)]
    lesson = nn.Sequential(*[m for c in convs for m in (c, nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True))])
    x = torch.rand(5, 1, 15, 15) - 0.5  # odd size: ceil-mode windows at the border too
    ours = stack(x)
    ours.square().sum().backward()
    ours_grads = [c.weight.grad.clone() for c in convs]
    for c in convs:
        c.weight.grad = None
    reference = lesson(x)
    reference.square().sum().backward()
    assert torch.equal(ours, reference)
    for mine, theirs in zip(ours_grads, [c.weight.grad for c in convs], strict=True):
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("form", ["phase convs", "transposed conv"])
@pytest.mark.parametrize("kernel_size", [1, 3, 5, 7])
def test_fused_upsample_conv_is_conv_of_the_upsampled_image(kernel_size: int, form: str) -> None:
    """Both shortcuts (training's phase convs, the exported transposed conv) compute
    conv(nearest ×2 upsample) with the same weights, gradients included."""
    import torch.nn.functional as F
    from torch import nn

    from components.models.blocks import upsample2_conv, upsample2_conv_transposed

    torch.manual_seed(kernel_size)
    conv = nn.Conv2d(5, 3, kernel_size, padding=kernel_size // 2)
    x = torch.randn(4, 5, 7, 9, requires_grad=True)
    fused = (upsample2_conv if form == "phase convs" else upsample2_conv_transposed)(x, conv)
    fused.square().sum().backward()
    fused_grads = [t.grad.clone() for t in (x, conv.weight, conv.bias)]
    for t in (x, conv.weight, conv.bias):
        t.grad = None
    plain = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    plain.square().sum().backward()
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
    for mine, theirs in zip(fused_grads, [t.grad for t in (x, conv.weight, conv.bias)], strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-4)
