"""A fully convolutional autoencoder for photographs: trained on patches, run on whole images of any size.

Encoder: per width in `channels`, one resolution level that halves the size, followed by
same-size convs (`CONVS_PER_LEVEL` convs per level, ReLU after each). The first halving is a
pixel-unshuffle (space-to-depth, lossless, as in FFDNet), the later ones stride-2 convs. The code
is the feature map at 1/2^levels of the input size. Decoder: the mirror, each level ending in a
×2 upsampling (sub-pixel conv or nearest + conv); super-resolution adds one more ×2 stage per
factor of two, and the last stage (the head) emits the image channels directly, so no wide layer
ever runs at full size.

Any input size: the encoder pads the input (replicate) up to a multiple of the total stride and
`forward` crops the output back to exactly input size × scale. Replicate padding works for
inputs of any size (reflect needs more pixels than the pad) and is how bicubic interpolation
treats borders anyway, so the cropped bicubic base is exactly bicubic of the unpadded input.

`residual=True` (the denoising / super-resolution setting): the network predicts a correction
that is added to a base, the input (bicubic-upsampled for super-resolution): output =
clamp(base + correction, 0, 1). The decoder must be able to produce that on its own
(decoder.onnx only gets the code), so the code carries the padded input losslessly as extra
channels, rearranged to the code's size by pixel-unshuffle (channels × stride² of them, e.g. 16
for grayscale at stride 4). The head also sees the base, which gives a linear input → correction
path: a plain "subtract the high frequencies" filter is learnt within a few hundred steps and the
deep path refines it (without it training sat at loss ≈ σ² much longer). Training takes the
squared error of the unclamped base + correction directly, so the loss has a gradient
everywhere and no sigmoid / logit round trip; `decode_logits` still returns logits (of the
clamped output) for callers that want them. Without `residual` the decoder returns logits and
`decode` applies the sigmoid, like the other kinds.

The decoder's output (decoder.onnx) has the padded size × scale: a code does not say how much
padding it holds. `forward` (model.onnx) crops to the exact size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.config import ModelConfig
from components.models.base import Autoencoder, GraphSpec, _Decode, _Encode, _Reconstruct

# Convs per resolution level, on each side of the code (encoder and decoder).
CONVS_PER_LEVEL = 3
# Outputs are clamped away from 0 and 1 by this much before `logit`, so logits stay finite.
LOGIT_EPS = 1e-6


def _conv(c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2)


def _init_weights(model: nn.Module) -> None:
    """He (fan-in, ReLU) init for every conv, zero biases; the last conv starts near zero.

    PyTorch's default conv init shrinks the signal about 6× per conv + ReLU, so a dozen layers
    start with a vanishing output and gradient, and a residual denoiser sits on the "predict no
    noise" plateau (loss stuck at σ²) for epochs. He init keeps the signal's scale through the
    depth; the small last layer makes the initial output the input (or logits near 0).
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
    with torch.no_grad():
        convs[-1].weight.mul_(0.1)


def _conv_relu(c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> list[nn.Module]:
    return [_conv(c_in, c_out, kernel_size, stride), nn.ReLU(inplace=True)]


class _Up(nn.Module):
    """×2 upsampling to `c_out` channels: sub-pixel (conv to 4·c_out, PixelShuffle) or nearest + conv."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.conv = _conv(c_in, c_out * 4 if mode == "pixelshuffle" else c_out, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "pixelshuffle":
            return F.pixel_shuffle(self.conv(x), 2)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class FcnEncoder(nn.Module):
    """Pad to a multiple of the stride, halve per level; with `skip`, append the unshuffled input."""

    def __init__(self, c_in: int, channels: list[int], kernel_size: int, convs: int, skip: bool) -> None:
        super().__init__()
        self.stride = 2 ** len(channels)
        self.skip = skip
        # The first halving is lossless (pixel-unshuffle, as in FFDNet): the per-pixel detail that
        # denoising needs is all still there at half size; further levels use stride-2 convs.
        layers: list[nn.Module] = [nn.PixelUnshuffle(2)]
        previous = c_in * 4
        for i, width in enumerate(channels):
            layers += _conv_relu(previous, width, kernel_size, stride=1 if i == 0 else 2)
            for _ in range(convs - 1):
                layers += _conv_relu(width, width, kernel_size)
            previous = width
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2], images.shape[-1]
        s = self.stride
        # (-h) % s pixels bring h up to the next multiple of s; computed from the (symbolic) shape,
        # so the ONNX graph pads correctly for any height and width.
        padded = F.pad(images, (0, (s - w % s) % s, 0, (s - h % s) % s), mode="replicate")
        features = self.layers(padded)
        if not self.skip:
            return features
        return torch.cat([features, F.pixel_unshuffle(padded, s)], dim=1)


class FcnDecoder(nn.Module):
    """Code → raw output at (padded input size) × scale: logits, or base + correction with `skip`.

    With `skip`, the last `c_in · stride²` code channels are the padded input; the base is that
    input, bicubic-upsampled by `scale` for super-resolution.
    """

    def __init__(
        self,
        channels: list[int],
        c_in: int,
        c_out: int,
        scale: int,
        kernel_size: int,
        convs: int,
        upsample: str,
        skip: bool,
    ) -> None:
        super().__init__()
        self.stride, self.scale, self.skip = 2 ** len(channels), scale, skip
        self.features = channels[-1]
        widths = channels[::-1]
        # Target width after each ×2 stage: the next level up, then channels[0] for super-resolution's
        # extra stages (the very last stage is the head, which emits the image channels).
        targets = [*widths[1:], *[channels[0]] * int(math.log2(scale))]
        stages = [*widths, *[channels[0]] * int(math.log2(scale))]
        layers: list[nn.Module] = []
        for i, width in enumerate(stages):
            level_convs = convs - 1 if i < len(widths) else 1
            for _ in range(level_convs):
                layers += _conv_relu(width, width, kernel_size)
            if i < len(stages) - 1:
                layers += [_Up(width, targets[i], kernel_size, upsample), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        # The last ×2 stage also sees the base (pixel-unshuffled to its size): a linear path from the
        # input to the correction, so a plain high-pass "subtract the noise" filter is learnt at once
        # and the deep path only has to refine it.
        self.head = _Up(stages[-1] + (c_in * 4 if skip else 0), c_out, kernel_size, upsample)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        features = self.body(code[:, : self.features])
        if not self.skip:
            return self.head(features)
        base = F.pixel_shuffle(code[:, self.features :], self.stride)
        if self.scale > 1:
            base = F.interpolate(base, scale_factor=float(self.scale), mode="bicubic", align_corners=False)
        return base + self.head(torch.cat([features, F.pixel_unshuffle(base, 2)], dim=1))


class FullyConvAutoencoder(Autoencoder):
    """Encoder → spatial code → decoder, for any image size; optionally residual (see the module doc)."""

    def __init__(
        self,
        cfg: ModelConfig,
        input_shape: tuple[int, int, int],
        output_shape: tuple[int, int, int],
        loss: str,
        convs_per_level: int = CONVS_PER_LEVEL,
    ) -> None:
        super().__init__(loss)
        c_in, h_in, w_in = input_shape
        c_out, h_out, w_out = output_shape
        scale = h_out // h_in
        if h_out != h_in * scale or w_out != w_in * scale or scale < 1 or scale & (scale - 1):
            raise ValueError(f"output {output_shape} must be a power-of-two multiple of input {input_shape}")
        if cfg.residual and c_in != c_out:
            raise ValueError(f"model.residual needs as many input as output channels, got {c_in} → {c_out}")
        self.scale, self.residual = scale, cfg.residual
        self.stride = 2 ** len(cfg.channels)
        self.encoder = FcnEncoder(c_in, cfg.channels, cfg.kernel_size, convs_per_level, cfg.residual)
        self.decoder = FcnDecoder(
            cfg.channels, c_in, c_out, scale, cfg.kernel_size, convs_per_level, cfg.upsample, cfg.residual
        )
        _init_weights(self)
        code_channels = cfg.channels[-1] + (c_in * self.stride**2 if cfg.residual else 0)
        self._latent_shape = (code_channels, -(-h_in // self.stride), -(-w_in // self.stride))

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The code shape for the training input size; other sizes give codes of ceil(size / stride)."""
        return self._latent_shape

    # --- inference -------------------------------------------------------------------------------
    def decode_logits(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        raw = self.decoder(code)
        if not self.residual:
            return raw
        return torch.logit(raw.clamp(LOGIT_EPS, 1 - LOGIT_EPS))

    def decode(self, code: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images at the padded size × scale (multiples of the stride); `forward` crops them."""
        raw = self.decoder(code)
        return raw.clamp(0.0, 1.0) if self.residual else torch.sigmoid(raw)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        out = self.decode(self.encode(images))
        return out[..., : images.shape[-2] * self.scale, : images.shape[-1] * self.scale]

    # --- training --------------------------------------------------------------------------------
    def losses(
        self, inputs: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        h, w = target.shape[-2], target.shape[-1]
        raw = self.decoder(self.encoder(inputs))[..., :h, :w].float()
        if not self.residual:
            per_pixel = (
                F.binary_cross_entropy_with_logits(raw, target, reduction="none")
                if self.loss_kind == "bce"
                else (torch.sigmoid(raw) - target) ** 2
            )
        elif self.loss_kind == "bce":
            per_pixel = F.binary_cross_entropy(raw.clamp(LOGIT_EPS, 1 - LOGIT_EPS), target, reduction="none")
        else:
            per_pixel = (raw - target) ** 2  # unclamped: a gradient even where the sum leaves [0, 1]
        recon = per_pixel.mean()  # per pixel, so the number reads the same at any patch size
        return {"recon": recon, "loss": recon}

    # --- export ----------------------------------------------------------------------------------
    def graphs(self, example_inputs: torch.Tensor) -> list[GraphSpec]:
        """Encoder, decoder and model with dynamic batch, height and width.

        The parity samples use sizes that are not multiples of the stride (37 + n by 45 + 2n), so
        the padding and cropping are checked, not just the convolutions.
        """
        c = example_inputs.shape[1]
        with torch.no_grad():
            code = self.encode(example_inputs)
        lo, hi = float(code.min()), float(code.max())
        axes: tuple[dict[int, str], ...] = ({0: "batch", 2: "height", 3: "width"},)

        def images(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
            return (torch.rand((n, c, 37 + n, 45 + 2 * n), generator=g),)

        def codes(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
            shape = (n, code.shape[1], 5 + n, 7 + 2 * n)
            return (lo + (hi - lo) * torch.rand(shape, generator=g),)

        return [
            GraphSpec("encoder.onnx", _Encode(self), (example_inputs,), ("images",), ("code",), axes, images),
            GraphSpec("decoder.onnx", _Decode(self), (code,), ("code",), ("images",), axes, codes),
            GraphSpec("model.onnx", _Reconstruct(self), (example_inputs,), ("images",), ("reconstruction",),
                      axes, images),
        ]  # fmt: skip
