"""ST-VAE training losses, discriminator, schedule, and a short CPU training run."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core.stvae import STVAE, DiagonalGaussian
from lavin_core.stvae.losses import (
    PAPER_SCHEDULE,
    LossWeights,
    PatchDiscriminator3D,
    PerceptualLoss,
    RandomConvFeatures,
    STVAELoss,
    STVAETrainingSchedule,
    TrainingStage,
    feature_distance,
    hinge_discriminator_loss,
    hinge_generator_loss,
    kl_loss,
    reconstruction_loss,
)


def pixels(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_reconstruction_losses():
    a, b = pixels(2, 3, 5, 8, 8, seed=1), pixels(2, 3, 5, 8, 8, seed=2)
    torch.testing.assert_close(reconstruction_loss(a, b), (a - b).abs().mean())
    torch.testing.assert_close(reconstruction_loss(a, b, "mse"), ((a - b) ** 2).mean())
    assert reconstruction_loss(a, a) == 0
    with pytest.raises(ValueError, match="'l1' or 'mse'"):
        reconstruction_loss(a, b, "l2")
    with pytest.raises(ValueError, match="differ in shape"):
        reconstruction_loss(a, b[:, :, :1])


def test_kl_loss_is_zero_for_the_prior_and_positive_otherwise():
    shape = (2, 4, 1, 2, 2)
    assert kl_loss(DiagonalGaussian(torch.zeros(shape), torch.zeros(shape))) == 0
    assert kl_loss(DiagonalGaussian(torch.randn(shape), torch.randn(shape))) > 0


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    torch.testing.assert_close(hinge_discriminator_loss(real, fake), torch.tensor(0.5 * (0.25 + 0.5)))
    torch.testing.assert_close(hinge_generator_loss(fake), torch.tensor(1.0))


def test_random_conv_features_are_deterministic_and_frozen():
    a, b = RandomConvFeatures(seed=3), RandomConvFeatures(seed=3)
    x = pixels(2, 3, 16, 16, seed=4)
    for fa, fb in zip(a(x), b(x), strict=True):
        torch.testing.assert_close(fa, fb)
    assert [f.shape[-1] for f in a(x)] == [16, 8, 4, 2]
    assert not any(p.requires_grad for p in a.parameters())
    assert not torch.equal(RandomConvFeatures(seed=4)(x)[0], a(x)[0])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), scale=st.floats(0.1, 10.0))
def test_feature_distance_is_zero_on_equal_inputs_and_scale_invariant(seed, scale):
    a, b = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(seed)), torch.randn(2, 8, 4, 4)
    assert feature_distance(a, a).abs().max() < 1e-6
    torch.testing.assert_close(feature_distance(a * scale, b), feature_distance(a, b), rtol=1e-4, atol=1e-5)
    assert (feature_distance(a, b) >= 0).all() and (feature_distance(a, b) <= 4 + 1e-5).all()


def test_perceptual_loss_takes_any_feature_net_and_clips():
    loss = PerceptualLoss()
    target = pixels(2, 3, 5, 16, 16, seed=5)
    assert loss(target, target) < 1e-6
    noisy = (target + 0.3 * torch.randn_like(target)).clamp(-1, 1)
    blurred = torch.nn.functional.avg_pool3d(target, (1, 3, 3), stride=1, padding=(0, 1, 1))
    assert loss(noisy, target) > 0 and loss(blurred, target) > 0
    single = PerceptualLoss(torch.nn.Conv2d(3, 4, 3, padding=1))  # one feature map, not a list
    assert single(noisy, target) > 0
    reconstruction = noisy.clone().requires_grad_(True)
    loss(reconstruction, target).backward()
    assert reconstruction.grad is not None and reconstruction.grad.abs().sum() > 0


def test_patch_discriminator_on_images_and_clips():
    torch.manual_seed(0)
    disc = PatchDiscriminator3D(channels=8, num_layers=3, groups=4)
    assert disc(pixels(2, 3, 5, 32, 32)).shape == (2, 1, 5, 4, 4)
    assert disc(pixels(2, 3, 1, 32, 32)).shape == (2, 1, 1, 4, 4)
    assert disc(pixels(2, 3, 32, 32)).shape == (2, 1, 1, 4, 4)


def test_stvae_loss_adds_the_adversarial_term_only_after_its_start():
    torch.manual_seed(0)
    weights = LossWeights(kl_weight=1e-3, perceptual_weight=0.5, adversarial_weight=0.2, adversarial_start_step=10)
    loss = STVAELoss(weights)
    disc = PatchDiscriminator3D(channels=8, num_layers=2, groups=4)
    target, recon = pixels(1, 3, 1, 16, 16, seed=1), pixels(1, 3, 1, 16, 16, seed=2)
    posterior = DiagonalGaussian(torch.randn(1, 16, 1, 2, 2), torch.randn(1, 16, 1, 2, 2))
    early = loss(target, recon, posterior, step=9, discriminator=disc)
    assert "adversarial" not in early
    expected = early["reconstruction"] + 1e-3 * early["kl"] + 0.5 * early["perceptual"]
    torch.testing.assert_close(early["total"], expected)
    late = loss(target, recon, posterior, step=10, discriminator=disc)
    torch.testing.assert_close(late["total"], expected + 0.2 * late["adversarial"])
    assert "perceptual" not in STVAELoss(LossWeights(perceptual_weight=0.0))(target, recon, posterior)


def test_the_paper_schedule_is_images_first_then_images_and_videos():
    first, second = PAPER_SCHEDULE.stages
    assert first.video_fraction == 0 and second.video_fraction > 0 and second.num_frames > 1
    assert PAPER_SCHEDULE.stage_at(0) is first and PAPER_SCHEDULE.stage_at(first.steps - 1) is first
    assert PAPER_SCHEDULE.stage_at(first.steps) is second
    assert PAPER_SCHEDULE.stage_at(PAPER_SCHEDULE.total_steps + 5) is second
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        TrainingStage(name="bad", steps=1, video_fraction=0.5, num_frames=8)
    with pytest.raises(ValueError):
        STVAETrainingSchedule(stages=())


def synthetic_images(count, size, generator):
    """Smooth colour patterns: products of low-frequency sines with random phases, in [-1, 1]."""
    coords = torch.linspace(0, 2 * math.pi, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    freq = torch.randint(1, 3, (count, 3, 2, 1, 1), generator=generator).float()
    phase = torch.rand(count, 3, 2, 1, 1, generator=generator) * 2 * math.pi
    images = torch.sin(freq[:, :, 0] * xx + phase[:, :, 0]) * torch.cos(freq[:, :, 1] * yy + phase[:, :, 1])
    return images.unsqueeze(2)  # (count, 3, 1, size, size)


@pytest.mark.slow
def test_a_few_hundred_cpu_steps_of_the_tiny_preset_cut_the_reconstruction_error():
    torch.manual_seed(0)
    vae = STVAE.from_preset("lavin-tiny")
    images = synthetic_images(8, 16, torch.Generator().manual_seed(0))
    loss = STVAELoss(LossWeights(perceptual_weight=0.0))
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def error():
        vae.eval()
        with torch.no_grad():
            return (vae.decode(vae.encode(images)) - images).abs().mean().item()

    before = error()
    vae.train()
    for step in range(200):
        batch = images[torch.randperm(8)[:4]]
        reconstruction, posterior = vae(batch)
        total = loss(batch, reconstruction, posterior, step=step)["total"]
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    after = error()
    assert after < 0.3 * before, (before, after)
