"""Every loss goes down when optimised on a fixed batch, with the documented signs."""

from __future__ import annotations

import pytest
import torch

from scenegan import losses
from scenegan.models import PatchDiscriminator


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(4, 3, 32, 32, generator=generator) * 0.5 + 0.3
    fake = torch.rand(4, 3, 32, 32, generator=generator) * 2 - 1
    return real, fake


@pytest.mark.parametrize("kind", losses.ADVERSARIAL_LOSSES)
def test_discriminator_loss_decreases_on_a_fixed_batch(kind):
    torch.manual_seed(0)
    critic = PatchDiscriminator(base_channels=8, num_layers=2, norm="none")
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.999))
    real, fake = fixed_batch()

    def total() -> torch.Tensor:
        loss = losses.discriminator_loss(kind, critic(real), critic(fake))
        if kind == "wgan-gp":
            loss = loss + 10 * losses.gradient_penalty(critic, real, fake)
        return loss

    start = total().item()
    for _ in range(30):
        optimizer.zero_grad()
        total().backward()
        optimizer.step()
    assert total().item() < start - 0.05


@pytest.mark.parametrize("kind", losses.ADVERSARIAL_LOSSES)
def test_generator_loss_decreases_by_moving_fakes(kind):
    torch.manual_seed(0)
    critic = PatchDiscriminator(base_channels=8, num_layers=2, norm="none").requires_grad_(False)
    fake = fixed_batch()[1].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([fake], lr=1e-2)
    start = losses.generator_loss(kind, critic(fake)).item()
    for _ in range(30):
        optimizer.zero_grad()
        losses.generator_loss(kind, critic(fake)).backward()
        optimizer.step()
    assert losses.generator_loss(kind, critic(fake)).item() < start


def test_sign_conventions_on_known_scores():
    real, fake = torch.full((8,), 3.0), torch.full((8,), -2.0)
    # A critic that separates well has a low loss; the generator's is high then.
    assert losses.discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(-5.0)
    assert losses.discriminator_loss("hinge", real, fake).item() == pytest.approx(0.0)
    assert losses.discriminator_loss("lsgan", torch.ones(8), torch.zeros(8)).item() == 0.0
    assert losses.generator_loss("wgan-gp", fake).item() == pytest.approx(2.0)
    assert losses.generator_loss("lsgan", torch.ones(8)).item() == 0.0
    saturated = losses.generator_loss("bce", torch.full((8,), -10.0))
    assert saturated.item() > 9  # non-saturating: still a large signal when D wins


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    direction = torch.randn(3 * 8 * 8)
    direction /= direction.norm()

    def critic(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ direction  # gradient norm exactly 1 everywhere

    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    assert losses.gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    assert losses.gradient_penalty(lambda x: 3 * critic(x), real, fake).item() == pytest.approx(4)


def test_reconstruction_losses_are_l1_and_decrease():
    target = torch.rand(2, 3, 16, 16)
    output = torch.zeros_like(target, requires_grad=True)
    optimizer = torch.optim.Adam([output], lr=0.05)
    first = losses.cycle_loss(output, target).item()
    assert first == pytest.approx(target.mean().item())
    for _ in range(20):
        optimizer.zero_grad()
        (losses.cycle_loss(output, target) + losses.identity_loss(output, target)).backward()
        optimizer.step()
    assert losses.reconstruction_l1(output, target).item() < first / 4


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        losses.generator_loss("wasserstein", torch.zeros(1))
