"""The DeepFN autoencoder (paper §3.1, Tables 1-2): a shared encoder and two decoders.

    E     ``encoder``           (B, 1, S, S) -> (B, 4w, S/16, S/16)
    D^y   ``decoder_template``  (B, 4w, S/16, S/16) -> (B, 1, S, S)   the template's appearance
    D^x   ``decoder_subject``   (B, 4w, S/16, S/16) -> (B, 1, S, S)   the subject's appearance

At the paper configuration (S=128, w=128, latent 1024) the layers are exactly Tables 1 and 2
(which follow the original deepfakes/faceswap autoencoder); every other configuration scales the
filters by ``w`` (``normalize.width``), the bottleneck by ``normalize.latent`` and the image side
by ``preprocess.ae_size``::

    from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder
    model = DeepFNAutoencoder(ArchConfig(size=64, width=16, latent=256))
    y_hat = model(x, decoder="template")          # Eq. 2: X^y = D^y(E(X))
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from deepfn.errors import DeepFNError

if TYPE_CHECKING:  # settings need pydantic: not imported at run time (bare GPU box)
    from deepfn.config.settings import NormalizeSettings, PreprocessSettings

__all__ = [
    "ArchConfig", "Encoder", "Decoder", "DeepFNAutoencoder", "check_images", "count_parameters",
    "glorot_init_", "kaiming_init_", "LEAKY_SLOPE",
]

LEAKY_SLOPE = 0.1  # faceswap's LeakyReLU(0.1) after every conv but the last
DecoderName = Literal["template", "subject"]


@dataclass(frozen=True)
class ArchConfig:
    """Architecture of one autoencoder: image side ``size``, filter ``width``, ``latent`` units."""

    size: int = 128
    width: int = 128
    latent: int = 1024
    mean_face: bool = False
    center_input: bool = False

    def __post_init__(self) -> None:
        if self.size < 32 or self.size % 32:
            raise DeepFNError(f"preprocess.ae_size: {self.size} must be a multiple of 32 (the "
                              "encoder halves it 4 times and the bottleneck is size/32)")
        if self.width < 4 or self.width % 4:
            raise DeepFNError(f"normalize.width: {self.width} must be a multiple of 4 (the last "
                              "PixelShuffle leaves width/4 channels)")
        if self.latent < 1:
            raise DeepFNError(f"normalize.latent: {self.latent} must be positive")

    @classmethod
    def from_settings(cls, normalize: NormalizeSettings,
                      preprocess: PreprocessSettings) -> ArchConfig:
        """From :class:`NormalizeSettings` (width, latent) and :class:`PreprocessSettings`."""
        return cls(size=int(preprocess.ae_size), width=int(normalize.width),
                   latent=int(normalize.latent),
                   mean_face=bool(normalize.mean_face),
                   center_input=bool(normalize.center_input))

    def to_dict(self) -> dict[str, int | bool]:
        """Every field (what model files store and run keys hash)."""
        return asdict(self)


def check_images(x: Tensor, size: int | None = None, name: str = "x") -> None:
    """Raise a one-line error unless ``x`` is a float (B, 1, H, W) batch (H == W == size)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B, 1, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got {x.dtype}")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"{name} must be {size}x{size} (the model's ae_size), got "
                         f"{tuple(x.shape[-2:])}")


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)  # Keras padding="same"


class _Upscale(nn.Sequential):
    """conv3x3 -> LeakyReLU -> PixelShuffle(2): (B, cin, h, w) -> (B, cout/4, 2h, 2w)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(_conv(cin, cout, 3), nn.LeakyReLU(LEAKY_SLOPE), nn.PixelShuffle(2))


class Encoder(nn.Module):
    """Table 1: 4 strided convs, dense bottleneck, dense back up and one upscale.

    (B, 1, S, S) -> (B, 4w, S/16, S/16).
    """

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        w, s = cfg.width, cfg.size
        chans = [1, w, 2 * w, 4 * w, 8 * w]
        self.convs = nn.Sequential(*[
            m for cin, cout in zip(chans[:-1], chans[1:], strict=True)
            for m in (_conv(cin, cout, 5, stride=2), nn.LeakyReLU(LEAKY_SLOPE))
        ])
        self.bottom = (8 * w, s // 32, s // 32)  # the Reshape target of Table 1
        self.dense_latent = nn.Linear(8 * w * (s // 16) ** 2, cfg.latent)
        self.dense_up = nn.Linear(cfg.latent, 8 * w * (s // 32) ** 2)
        self.upscale = _Upscale(8 * w, 16 * w)

    def forward(self, x: Tensor) -> Tensor:
        h = self.convs(x)                                   # (B, 8w, S/16, S/16)
        z = self.dense_latent(h.flatten(1))                 # (B, latent)
        h = self.dense_up(z).view(-1, *self.bottom)         # (B, 8w, S/32, S/32)
        out: Tensor = self.upscale(h)                       # (B, 4w, S/16, S/16)
        return out


class Decoder(nn.Module):
    """Table 2: 4 upscales (8w, 4w, 2w, w filters) then conv5x5 -> 1 channel + sigmoid.

    (B, 4w, S/16, S/16) -> (B, 1, S, S) in [0, 1].

    With ``cfg.mean_face`` the sigmoid's input gets a learned per-pixel bias ``face`` (1, 1, S, S)
    (S^2 parameters), initialised by :meth:`set_mean_face` to logit(mean frame of the decoder's
    person): the layers then only learn each frame's deviation from the average face.  With
    ``cfg.center_input`` the decoder also holds its person's mean frame as the fixed buffer
    ``center`` (1, 1, S, S), which :meth:`DeepFNAutoencoder.encode` subtracts from that person's
    frames before E.
    """

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        w = cfg.width
        self.upscales = nn.Sequential(
            _Upscale(4 * w, 8 * w), _Upscale(2 * w, 4 * w), _Upscale(w, 2 * w),
            _Upscale(w // 2, w),
        )
        self.out = _conv(w // 4, 1, 5)
        self.face = nn.Parameter(torch.zeros(1, 1, cfg.size, cfg.size)) if cfg.mean_face \
            else None
        self.center: Tensor | None
        if cfg.center_input:
            self.register_buffer("center", torch.zeros(1, 1, cfg.size, cfg.size))
        else:
            self.center = None

    def forward(self, h: Tensor) -> Tensor:
        z = self.out(self.upscales(h))
        if self.face is not None:
            z = z + self.face.to(z.dtype)
        return torch.sigmoid(z)

    @torch.no_grad()
    def set_mean_face(self, frames: Tensor, eps: float = 1.0 / 255) -> None:
        """``face`` <- logit(mean of ``frames`` (N, 1, S, S) in [0, 1]), clamped to [eps, 1-eps],
        and ``center`` <- their mean (each where the config has it)."""
        if self.face is None and self.center is None:
            raise ValueError("set_mean_face needs an ArchConfig with mean_face or center_input")
        mean = frames.float().mean(0, keepdim=True)
        if self.center is not None:
            self.center.copy_(mean)
        if self.face is not None:
            m = mean.clamp(eps, 1 - eps)
            self.face.copy_(torch.log(m) - torch.log1p(-m))


def glorot_init_(module: nn.Module) -> nn.Module:
    """Keras' default initialisation (Glorot-uniform weights, zero biases) on every conv and
    dense layer, in place, as in the Keras faceswap model the paper used (``normalize.init:
    glorot``).

    PyTorch's default (Kaiming-uniform with a = sqrt(5)) starts each layer ~1.4x smaller, which
    over the autoencoder's 12 layers slows early training: in the joint-normalizer probe
    (docs/normalizer.md) the template L1 after 1,500 iterations was 0.047 with this init and
    0.068 with PyTorch's.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def kaiming_init_(module: nn.Module) -> nn.Module:
    """He-uniform weights for LeakyReLU(0.1), zero biases, on every conv and dense layer, in
    place (``normalize.init: kaiming``).

    Glorot halves the signal's variance at each of the ~13 LeakyReLU layers, so a fresh
    autoencoder first sits on a plateau at the mean face (with ``mean_face``, 450 of 800
    template-only iterations at beta1 0.5 in research/normalizer_recipe.py); He keeps
    the variance and the loss starts falling at once.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class DeepFNAutoencoder(nn.Module):
    """Shared ``encoder`` E with ``decoder_template`` D^y and ``decoder_subject`` D^x."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder_template = Decoder(cfg)
        self.decoder_subject = Decoder(cfg)
        glorot_init_(self)

    def decoder(self, which: DecoderName) -> Decoder:
        if which == "template":
            return self.decoder_template
        if which == "subject":
            return self.decoder_subject
        raise ValueError(f"decoder must be 'template' or 'subject', got {which!r}")

    def encode(self, x: Tensor, n_template: int = 0) -> Tensor:
        """E of a batch whose first ``n_template`` frames are the template's and the rest the
        subject's.  With ``cfg.center_input`` each frame first loses its person's mean frame
        (D^y's / D^x's ``center``), so E sees expression, not identity; otherwise E(x)."""
        if self.cfg.center_input:
            ct, cs = self.decoder_template.center, self.decoder_subject.center
            assert ct is not None and cs is not None  # center_input registers both
            k = min(n_template, len(x))
            x = x - torch.cat([ct.expand(k, -1, -1, -1),
                               cs.expand(len(x) - k, -1, -1, -1)]).to(x.dtype)
        h: Tensor = self.encoder(x)
        return h

    def forward(self, x: Tensor, decoder: DecoderName = "template",
                source: DecoderName = "subject") -> Tensor:
        """(B, 1, S, S) in [0, 1] -> (B, 1, S, S): ``D(E(x))``; ``"template"`` is Eq. 2.

        ``source`` says whose frames ``x`` are (it matters only with ``cfg.center_input``):
        the subject's (Eq. 2, the default) or the template's."""
        check_images(x, self.cfg.size)
        h = self.encode(x, n_template=len(x) if source == "template" else 0)
        out: Tensor = self.decoder(decoder)(h)
        return out

    def set_mean_face(self, which: DecoderName, frames: Tensor) -> None:
        """Set ``which`` decoder's person means from ``frames``: its mean-face bias
        (``cfg.mean_face``) and its input center (``cfg.center_input``)."""
        self.decoder(which).set_mean_face(frames)

    def copy_template_decoder_to_subject(self) -> None:
        """D^x <- D^y (the warm start's subject decoder starts from the template's)."""
        self.decoder_subject.load_state_dict(copy.deepcopy(self.decoder_template.state_dict()))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
