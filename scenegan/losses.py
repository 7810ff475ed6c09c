"""GAN losses: adversarial (lsgan, bce, wgan-gp, hinge), reconstruction (cycle, identity)
and contrastive (PatchNCE).

Sign conventions — every function returns a quantity to *minimise*:

* `discriminator_loss(kind, real, fake)`: the discriminator's (critic's) loss given its raw
  outputs (logits / scores, any shape) on real and on generated samples.
* `generator_loss(kind, fake)`: the generator's loss given the discriminator's outputs on
  generated samples.

| kind    | discriminator minimises                     | generator minimises      |
|---------|---------------------------------------------|--------------------------|
| lsgan   | E[(D(x) - 1)^2] + E[D(G(z))^2]              | E[(D(G(z)) - 1)^2]       |
| bce     | -E[log s(D(x))] - E[log(1 - s(D(G(z))))]    | -E[log s(D(G(z)))] (non-saturating) |
| wgan-gp | E[D(G(z))] - E[D(x)] + gp_weight * GP       | -E[D(G(z))]              |
| hinge   | E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]    | -E[D(G(z))]              |

so the WGAN critic *maximises* E[D(x)] - E[D(G(z))], the Wasserstein estimate, and GP is
`gradient_penalty` (Gulrajani et al. 2017): E[(||grad D(x_hat)||_2 - 1)^2] on random
interpolates x_hat between real and fake, added by the caller with its weight.

A discriminator may answer with a list of outputs (one logit map per scale, as the
projected discriminator does): the adversarial losses then average the per-scale losses,
each scale weighing the same whatever its number of locations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

ADVERSARIAL_LOSSES = ("lsgan", "bce", "wgan-gp", "hinge")


Outputs = torch.Tensor | list[torch.Tensor]


def _full(x: torch.Tensor) -> torch.Tensor:
    """Losses in fp32 even under autocast; fp64 (`--amp fp64`) stays fp64."""
    return x if x.dtype == torch.float64 else x.float()


def _check(kind: str) -> None:
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {kind!r}; choose one of {ADVERSARIAL_LOSSES}")


def discriminator_loss(kind: str, real: Outputs, fake: Outputs) -> torch.Tensor:
    """The discriminator's loss (without the gradient penalty for wgan-gp)."""
    _check(kind)
    if isinstance(real, list):
        pairs = zip(real, fake, strict=True)
        return torch.stack([discriminator_loss(kind, r, f) for r, f in pairs]).mean()
    real, fake = _full(real), _full(fake)  # losses in fp32 even under autocast
    if kind == "lsgan":
        return 0.5 * (((real - 1) ** 2).mean() + (fake**2).mean())
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()  # hinge


def generator_loss(kind: str, fake: Outputs) -> torch.Tensor:
    """The generator's adversarial loss."""
    _check(kind)
    if isinstance(fake, list):
        return torch.stack([generator_loss(kind, f) for f in fake]).mean()
    fake = _full(fake)
    if kind == "lsgan":
        return ((fake - 1) ** 2).mean()
    if kind == "bce":  # non-saturating: strong gradients while D still wins easily
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    return -fake.mean()  # wgan-gp and hinge


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E[(||grad_x critic(x_hat)||_2 - 1)^2] over per-sample interpolates of real and fake."""
    alpha = torch.rand(
        (real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device="cpu"
    ).to(real.device, real.dtype)
    interpolates = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(interpolates)
    (gradients,) = torch.autograd.grad(
        _full(scores).sum(), interpolates, create_graph=True
    )  # (B, C, H, W)
    norms = _full(gradients.flatten(1)).norm(2, dim=1)
    return ((norms - 1) ** 2).mean()


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """L1 between F(G(x)) and x: the translation must be invertible (CycleGAN)."""
    return F.l1_loss(_full(reconstructed), _full(original))


def identity_loss(mapped: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """L1 between G(y) and y for y already in G's target domain: keeps colours stable."""
    return F.l1_loss(_full(mapped), _full(original))


def reconstruction_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 to a paired target (pix2pix)."""
    return F.l1_loss(_full(output), _full(target))


def patch_nce_loss(
    queries: torch.Tensor, keys: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    """PatchNCE (CUT): InfoNCE over patches of one image.

    `queries` (B, N, D) embed N locations of the translated image, `keys` (B, N, D) the same
    N locations of the input, both L2-normalised. For query i the positive is key i (the
    same place in the input) and the negatives are the other N - 1 keys of the same image:
    the translation may change how a place looks, not what it is. Cross-entropy of
    picking the positive, averaged over locations and images.
    """
    keys = keys.detach()  # the input's side is the target, as in CUT
    logits = torch.bmm(_full(queries), _full(keys).transpose(1, 2)) / temperature  # (B,N,N)
    batch, count, _ = logits.shape
    targets = torch.arange(count, device=logits.device).expand(batch, count)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


SATURATION_LIMIT = 2.65  # atanh(0.99): a pixel may reach 1.3/255 from its range's end


def saturation_penalty(logits: torch.Tensor, limit: float = SATURATION_LIMIT) -> torch.Tensor:
    """How far a generator's pre-tanh logits go past +-`limit`: mean(relu(|z| - limit)^2).

    Past about 3, tanh's gradient vanishes (1e-2 at 3, 1e-8 at 10): a pixel the adversarial
    loss pushed into pure colour no longer receives any gradient, from any loss, and stays.
    That is how few-shot runs painted locked blobs of pure red, green or blue (logits up to
    37 measured). Within the limit the penalty is 0, so every visible colour stays free."""
    return F.relu(_full(logits).abs() - limit).square().mean()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation of (B, C, H, W) images: mean |dx| + mean |dy|.

    The prior of flat-colour pictures (the 'cartoon' part of an image in the cartoon +
    texture decomposition): a sharp edge costs its height, no more than a soft one, while
    texture, noise and stripes cost at every pixel. Penalising it on the generator's output
    removes photo texture and high-frequency artefacts and keeps the outlines."""
    images = _full(images)
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy


def luminance_moved(inputs: torch.Tensor, outputs: torch.Tensor, cell: int = 8) -> torch.Tensor:
    """Mean |L1| between the luminance of `inputs` and `outputs` (B, 3, H, W) averaged over
    `cell` x `cell` cells: how far a translation moved the picture's coarse light and dark.

    Colour (hue, saturation) and detail finer than a cell are free; painting a flat blob of
    sky-white or grass-green over rocks, or darkening a bright sky, is not."""
    difference = _full(inputs) - _full(outputs)  # luminance and pooling are linear
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=difference.dtype, device=inputs.device)
    luminance = (difference * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return F.avg_pool2d(luminance, cell, ceil_mode=True).abs().mean()


def low_pass(images: torch.Tensor, width: int = 5) -> torch.Tensor:
    """Each channel of (B, C, H, W) images through a separable binomial filter of `width`
    taps (3: [1,2,1]/4, 5: [1,4,6,4,1]/16), reflected at the borders."""
    if width not in (3, 5):
        raise ValueError(f"low-pass width must be 3 or 5, not {width}")
    taps = torch.tensor([1.0, 2.0, 1.0] if width == 3 else [1.0, 4.0, 6.0, 4.0, 1.0])
    taps = (taps / taps.sum()).to(images.dtype).to(images.device)
    channels, pad = images.shape[1], width // 2
    x = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, 1, width).expand(channels, 1, 1, width), groups=channels)
    return F.conv2d(x, taps.view(1, 1, width, 1).expand(channels, 1, width, 1), groups=channels)


def feature_statistics_distance(
    fake: list[torch.Tensor], real: list[torch.Tensor], eps: float = 1e-5
) -> torch.Tensor:
    """How far the per-channel statistics of feature maps `fake` are from those of `real`
    (lists of (B, C, H, W), one per layer): mean |mean_f - mean_r| + mean |std_f - std_r|
    per layer, averaged over layers. Statistics pool the batch and every position; `real`
    gets no gradient.

    AdaIN's style statistics (Huang and Belongie 2017): on a pretrained network's early
    layers they describe colours, brush marks and textures wherever they are, not which
    objects are where, so matching them paints the picture everywhere and moves no scene."""
    distances = []
    for f, r in zip(fake, real, strict=True):
        f, r = _full(f), _full(r).detach()
        f_mean, r_mean = f.mean(dim=(0, 2, 3)), r.mean(dim=(0, 2, 3))
        f_std = (f.var(dim=(0, 2, 3), unbiased=False) + eps).sqrt()
        r_std = (r.var(dim=(0, 2, 3), unbiased=False) + eps).sqrt()
        distances.append((f_mean - r_mean).abs().mean() + (f_std - r_std).abs().mean())
    return torch.stack(distances).mean()


def sliced_wasserstein(
    fake: torch.Tensor, real: torch.Tensor, generator: torch.Generator, projections: int = 32
) -> torch.Tensor:
    """Sliced Wasserstein-1 distance between the colours of the pixels of `fake` and those
    of `real` ((B, C, H, W) each, any sizes): both pixel sets projected on `projections`
    random unit directions of colour space (drawn from `generator`), sorted, and the
    quantiles compared (mean |difference|). `real` gets no gradient.

    Where the pixels are does not matter, only which colours there are and how many: a
    colour no painting has (a pure, neon green) costs its distance to the paintings'
    nearest quantile, however well it fools a discriminator's features."""
    f = _full(fake).transpose(0, 1).reshape(fake.shape[1], -1)  # (C, N)
    r = _full(real).detach().transpose(0, 1).reshape(real.shape[1], -1)  # (C, M)
    directions = torch.randn(f.shape[0], projections, generator=generator)
    directions = (directions / directions.norm(dim=0, keepdim=True)).to(f.dtype).to(f.device)
    f_sorted = (directions.T @ f).sort(dim=1).values  # (K, N)
    r_sorted = (directions.T @ r).sort(dim=1).values  # (K, M)
    if r_sorted.shape[1] != f_sorted.shape[1]:  # the real quantiles at the fake's positions
        at = torch.linspace(0, r_sorted.shape[1] - 1, f_sorted.shape[1], device=f.device)
        r_sorted = r_sorted[:, at.round().long()]
    return (f_sorted - r_sorted).abs().mean()
