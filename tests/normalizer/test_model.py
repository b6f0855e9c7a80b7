"""The autoencoder of Tables 1-2: exact parameter count, shapes, bad configurations."""

from __future__ import annotations

import pytest
import torch

from deepfn.errors import DeepFNError
from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder, check_images, count_parameters


def _conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def _dense(nin: int, nout: int) -> int:
    return nin * nout + nout


def test_paper_configuration_has_the_exact_parameter_count_of_tables_1_and_2():
    # Table 1: 4 strided 5x5 convs (128..1024), Dense 65536->1024, Dense 1024->16384,
    # conv3x3 1024->2048 (then PixelShuffle -> 8x8x512).
    encoder = (_conv(1, 128, 5) + _conv(128, 256, 5) + _conv(256, 512, 5) + _conv(512, 1024, 5)
               + _dense(8 * 8 * 1024, 1024) + _dense(1024, 4 * 4 * 1024) + _conv(1024, 2048, 3))
    # Table 2: conv3x3 512->1024, 256->512, 128->256, 64->128 (each + PixelShuffle), 5x5 32->1.
    decoder = (_conv(512, 1024, 3) + _conv(256, 512, 3) + _conv(128, 256, 3) + _conv(64, 128, 3)
               + _conv(32, 1, 5))
    with torch.device("meta"):  # no memory, no init: instant
        model = DeepFNAutoencoder(ArchConfig(size=128, width=128, latent=1024))
    assert count_parameters(model.encoder) == encoder
    assert count_parameters(model.decoder_template) == decoder
    assert count_parameters(model.decoder_subject) == decoder
    assert count_parameters(model) == encoder + 2 * decoder == 132_527_426


def test_paper_configuration_intermediate_shapes_match_table_1():
    with torch.device("meta"):
        model = DeepFNAutoencoder(ArchConfig())
        h = model.encoder.convs(torch.empty(2, 1, 128, 128))
        assert tuple(h.shape) == (2, 1024, 8, 8)
        assert tuple(model.encoder(torch.empty(2, 1, 128, 128)).shape) == (2, 512, 8, 8)
        out = model.decoder_template(torch.empty(2, 512, 8, 8))
    assert tuple(out.shape) == (2, 1, 128, 128)


@pytest.mark.parametrize(("size", "width", "latent"), [(32, 4, 8), (64, 8, 32), (96, 4, 16)])
@torch.no_grad()
def test_shapes_scale_with_size_width_latent(size: int, width: int, latent: int):
    torch.manual_seed(0)
    model = DeepFNAutoencoder(ArchConfig(size, width, latent))
    x = torch.rand(3, 1, size, size)
    h = model.encoder(x)
    assert tuple(h.shape) == (3, 4 * width, size // 16, size // 16)
    assert model.encoder.dense_latent.out_features == latent
    for which in ("template", "subject"):
        y = model(x, decoder=which)
        assert tuple(y.shape) == (3, 1, size, size)
        assert float(y.min()) > 0.0 and float(y.max()) < 1.0  # sigmoid output


def test_submodules_are_named_after_the_paper():
    names = {n for n, _ in DeepFNAutoencoder(ArchConfig(32, 4, 8)).named_children()}
    assert names == {"encoder", "decoder_template", "decoder_subject"}


def test_copy_template_decoder_to_subject():
    model = DeepFNAutoencoder(ArchConfig(32, 4, 8))
    model.copy_template_decoder_to_subject()
    for a, b in zip(model.decoder_template.parameters(), model.decoder_subject.parameters(),
                    strict=True):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


@pytest.mark.parametrize(("size", "width", "key"), [(48, 4, "ae_size"), (32, 6, "width")])
def test_bad_architecture_is_one_line_naming_the_key(size: int, width: int, key: str):
    with pytest.raises(DeepFNError, match=key) as err:
        ArchConfig(size, width, 8)
    assert "\n" not in str(err.value)


def test_input_checks_say_what_was_got():
    model = DeepFNAutoencoder(ArchConfig(32, 4, 8))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\), got \(2, 3, 32, 32\)"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="32x32"):
        model(torch.rand(2, 1, 64, 64))
    with pytest.raises(ValueError, match="float"):
        check_images(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="decoder"):
        model(torch.rand(1, 1, 32, 32), decoder="other")  # type: ignore[arg-type]


def test_layers_start_with_glorot_initialisation() -> None:
    """Glorot-uniform weights (bound sqrt(6 / (fan_in + fan_out))) and zero biases."""
    torch.manual_seed(0)
    model = DeepFNAutoencoder(ArchConfig(size=64, width=16, latent=256))
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 4 + 2 + 1 + 2 * (4 + 1)  # convs, dense x2, upscale; 2 decoders
    for m in layers:
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        assert m.weight.abs().max() <= bound
        assert m.weight.abs().max() > 0.9 * bound  # uniform over the whole range
        assert torch.count_nonzero(m.bias) == 0


def test_mean_face_decoder_starts_at_its_persons_average_face() -> None:
    from deepfn.normalizer.jobs import init_model, set_faces

    cfg = ArchConfig(size=32, width=4, latent=8, mean_face=True)
    model = init_model(cfg, seed=0, init="kaiming")
    frames = torch.rand(10, 1, 32, 32) * 0.8 + 0.1
    set_faces(model, template=frames, subject=1 - frames)
    for dec in (model.decoder_template, model.decoder_subject):  # silence the learned layers
        torch.nn.init.zeros_(dec.out.weight)
        torch.nn.init.zeros_(dec.out.bias)
    h = model.encoder(torch.rand(3, 1, 32, 32))
    torch.testing.assert_close(model.decoder_template(h), frames.mean(0).expand(3, 1, 32, 32))
    torch.testing.assert_close(model.decoder_subject(h), (1 - frames).mean(0).expand(3, 1, 32, 32))
    assert count_parameters(model) == count_parameters(
        DeepFNAutoencoder(ArchConfig(size=32, width=4, latent=8))) + 2 * 32 * 32


def test_arch_dict_holds_every_field_and_table2_models_reject_set_mean_face() -> None:
    cfg = ArchConfig(size=32, width=4, latent=8)
    assert cfg.to_dict() == {"size": 32, "width": 4, "latent": 8, "mean_face": False,
                             "center_input": False}
    assert ArchConfig(**cfg.to_dict()) == cfg  # what model files store rebuilds the config
    with pytest.raises(ValueError, match="mean_face"):
        DeepFNAutoencoder(cfg).set_mean_face("template", torch.rand(2, 1, 32, 32))


def test_centred_input_subtracts_each_persons_mean_frame_before_the_encoder() -> None:
    from deepfn.normalizer.jobs import init_model, set_faces

    cfg = ArchConfig(size=32, width=4, latent=8, center_input=True)
    model = init_model(cfg, seed=0, init="kaiming").eval()
    y, x = torch.rand(6, 1, 32, 32), torch.rand(5, 1, 32, 32) * 0.5
    set_faces(model, template=y, subject=x)
    plain = DeepFNAutoencoder(ArchConfig(size=32, width=4, latent=8)).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if not k.endswith(".center")})
    with torch.no_grad():
        # Eq. 2 on the subject's frames: E sees x - mean(x)
        torch.testing.assert_close(model(x), plain(x - x.mean(0)))
        torch.testing.assert_close(model(y, source="template"), plain(y - y.mean(0)))
        # a training batch [y; x]: each part loses its own person's mean
        both = model.encode(torch.cat([y, x]), n_template=len(y))
        torch.testing.assert_close(both, plain.encoder(torch.cat([y - y.mean(0),
                                                                  x - x.mean(0)])))
    assert cfg.to_dict()["center_input"] is True
    assert count_parameters(model) == count_parameters(plain)  # the centers are buffers
    assert "decoder_subject.center" in model.state_dict()  # ... saved with the checkpoint
