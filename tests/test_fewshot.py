"""The few-shot training parts: pretrained-feature discriminator, PatchNCE, EMA warm-up,
generators that start at the identity."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scenegan import features, losses
from scenegan.models import build_model
from scenegan.models.layers import init_weights
from scenegan.models.nce import PatchProjector, sample_locations
from scenegan.models.projected import ProjectedDiscriminator
from scenegan.training.components import EMA


def _images(count: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_lite1_is_a_different_deeper_network_and_folding_keeps_its_function():
    lite0, lite1 = features.load_pretrained(0), features.load_pretrained(1)
    assert len(lite1._blocks) == 21 > len(lite0._blocks) == 16  # strict loads: all in place
    x = features.normalize(_images())
    pyramid = lite1.pyramid(x)
    assert [tuple(level.shape[1:]) for level in pyramid] == [
        (24, 16, 16),
        (40, 8, 8),
        (112, 4, 4),
        (320, 2, 2),
    ]
    folded = features.fold_batch_norm(lite1).pyramid(x)
    for exact, merged in zip(pyramid, folded, strict=True):
        assert torch.allclose(exact, merged, atol=1e-3)
    assert not torch.allclose(pyramid[-1], lite0.pyramid(x)[-1][:, : pyramid[-1].shape[1]])


def test_projected_discriminator_trains_its_heads_only_and_passes_gradients_to_images():
    torch.manual_seed(0)
    critic = ProjectedDiscriminator(head_channels=16)
    backbone = {k: v.clone() for k, v in critic.backbone.state_dict().items()}
    assert not any(k.startswith("_frozen") for k in critic.state_dict())
    assert all(p.requires_grad for p in critic.parameters())
    heads = {k: v.clone() for k, v in critic.state_dict().items()}
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    real, fake = _images(seed=1), _images(seed=2).requires_grad_(True)
    for _ in range(3):
        optimizer.zero_grad()
        loss = losses.discriminator_loss("hinge", critic(real), critic(fake))
        loss.backward()
        assert all(p.grad is None for p in critic.backbone.parameters())
        optimizer.step()
    assert fake.grad is not None and fake.grad.abs().sum() > 0  # the generator can learn
    for key, value in critic.backbone.state_dict().items():
        assert torch.equal(value, backbone[key]), key  # frozen: not one weight moved
    moved = [k for k, v in critic.state_dict().items() if not torch.equal(v, heads[k])]
    assert any("heads" in k for k in moved)
    outputs = critic(real)
    assert [o.shape[-1] for o in outputs] == [16, 8, 4, 2]


def test_projected_discriminator_refuses_the_metrics_network():
    with pytest.raises(ValueError, match="KID"):
        ProjectedDiscriminator(backbone=0)


def test_projected_discriminator_round_trips_through_its_state_dict():
    critic = build_model("projected", {"head_channels": 8})
    copy = build_model("projected", dict(critic.config))
    copy.load_state_dict(critic.state_dict())
    x = _images(size=32)
    for a, b in zip(critic.eval()(x), copy.eval()(x), strict=True):
        assert torch.equal(a, b)


def _largest_change(critic, a: torch.Tensor, b: torch.Tensor) -> float:
    return max((x - y).abs().max().item() for x, y in zip(critic(a), critic(b), strict=True))


def test_projected_discriminator_blur_hides_one_pixel_stripes_and_keeps_broad_shapes():
    with pytest.raises(ValueError, match="blur"):
        ProjectedDiscriminator(head_channels=8, blur=4)
    critic = build_model("projected", {"head_channels": 8, "blur": 3}).eval()
    plain = build_model("projected", {"head_channels": 8}).eval()  # eval: spectral norm fixed
    plain.load_state_dict(critic.state_dict())  # the same heads: the filter has no weights
    base = torch.zeros(1, 3, 32, 32)
    base[..., 16:, :] = 0.6  # a broad shape: two flat halves
    striped = base.clone()
    striped[..., ::2] += 0.4  # plus thin stripes, one pixel wide, 0.2 brighter on average
    even = base + 0.2  # the same average brightness, no stripes
    assert _largest_change(critic, striped, even) < 1e-4  # [1,2,1] cancels period 2
    assert _largest_change(plain, striped, even) > 0.1
    assert _largest_change(critic, base, torch.zeros(1, 3, 32, 32)) > 1e-3  # shapes: seen
    rebuilt = build_model("projected", dict(critic.config)).eval()
    rebuilt.load_state_dict(critic.state_dict())
    for a, b in zip(critic(striped), rebuilt(striped), strict=True):
        assert torch.equal(a, b)


def test_patch_nce_prefers_matching_patches_to_shuffled_ones():
    generator = torch.Generator().manual_seed(0)
    keys = torch.nn.functional.normalize(torch.randn(2, 64, 32, generator=generator), dim=-1)
    noisy = keys + 0.1 * torch.randn(keys.shape, generator=generator)
    queries = torch.nn.functional.normalize(noisy, dim=-1)
    shuffled = queries[:, torch.randperm(64, generator=generator)]
    matching = losses.patch_nce_loss(queries, keys)
    assert matching < losses.patch_nce_loss(shuffled, keys) - 1.0
    assert matching < math.log(64)  # better than chance


def test_patch_projector_embeds_the_same_locations_of_each_layer():
    generator = build_model("light", {"base_channels": 8, "num_blocks": 2, "residual": True})
    x = _images(size=32)
    maps = generator.nce_features(x)
    assert [m.shape[1] for m in maps] == generator.nce_channels
    projector = PatchProjector(generator.nce_channels, dim=16)
    locations = sample_locations(maps, 20, torch.Generator().manual_seed(0))
    embedded = projector(maps, locations)
    assert [tuple(e.shape) for e in embedded] == [
        (2, min(20, m.shape[-2] * m.shape[-1]), 16) for m in maps
    ]
    assert torch.allclose(embedded[0].norm(dim=-1), torch.ones(2, 20))
    assert all(len(set(where.tolist())) == len(where) for where in locations)


@pytest.mark.parametrize(
    "architecture, arguments",
    [
        ("resnet", {"base_channels": 8, "num_blocks": 2, "upsample": "nearest"}),
        ("resnet", {"base_channels": 8, "num_blocks": 2}),
        ("light", {"base_channels": 8, "num_blocks": 2}),
    ],
)
def test_residual_generators_start_as_the_identity_and_then_learn(architecture, arguments):
    torch.manual_seed(0)
    model = build_model(architecture, {**arguments, "residual": True})
    init_weights(model)  # the training initialisation keeps the zero head
    x = _images(size=32)
    assert torch.allclose(model(x), x.clamp(-0.999, 0.999), atol=1e-6)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        (model(x) - 0.5).abs().mean().backward()
        optimizer.step()
    assert (model(x) - x).abs().mean() > 1e-3


def test_nearest_upsampling_has_no_transposed_convolution():
    model = build_model("resnet", {"base_channels": 8, "num_blocks": 1, "upsample": "nearest"})
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())
    assert model(_images(size=32)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="upsample"):
        build_model("resnet", {"upsample": "bilinear"})


def test_ema_warm_up_follows_its_schedule():
    model = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(model, decay=0.999, rampup=0.05)
    assert ema.decay_at(0) == 0.0  # first update copies the network
    # Half-life = 0.05 * step until it reaches 0.999's (693 steps), at step 13,863.
    for step in (20, 200, 2000):
        half_life = math.log(0.5) / math.log(ema.decay_at(step))
        assert half_life == pytest.approx(0.05 * step)
    assert ema.decay_at(20_000) == pytest.approx(0.999)
    assert ema.decay_at(10**6) == pytest.approx(0.999)
    assert EMA(model, decay=0.999).decay_at(5) == 0.999  # no ramp: fixed decay

    # What the ramp is for: after 300 steps of a network moving from 0 to 1, the fixed
    # decay still holds mostly the start; the ramped average is close to the recent weights.
    fixed, ramped = EMA(model, 0.999), EMA(model, 0.999, rampup=0.05)
    with torch.no_grad():
        model.weight.zero_()
        fixed.model.weight.zero_()
        ramped.model.weight.zero_()
        for step in range(300):
            model.weight.fill_((step + 1) / 300)
            fixed.update(model, None)
            ramped.update(model, step)
    assert fixed.model.weight.item() < 0.2
    assert ramped.model.weight.item() > 0.85


def _tiny_contrastive_run(tmp_path, images: int, run: str = "run", on_step=None, **overrides):
    """Train the contrastive `tiny` preset on procedural photos and paintings (written once
    under tmp_path/data); returns the task as it is after the last step."""
    from scenegan.scenes import write_scenes
    from scenegan.training import resolve_config, training_loop

    data = tmp_path / "data"
    if not data.exists():
        write_scenes(data / "photo", images, width=36, height=36, seed=0)
        write_scenes(data / "painting", images, width=36, height=36, seed=1, style="painting")
    config = resolve_config(
        "contrastive",
        "tiny",
        data=str(data),
        output=str(tmp_path / run),
        source_domain="photo",
        target_domain="painting",
        eval_every=-1,
        **overrides,
    )
    seen: dict = {}

    def watch(step, task):
        seen["task"] = task
        if on_step:
            on_step(step, task)

    training_loop(config, progress=False, on_step=watch)
    return seen["task"]


def test_contrastive_training_leaves_the_feature_networks_untouched(tmp_path):
    from scenegan.training import checkpoint as ckpt

    task = _tiny_contrastive_run(tmp_path, 8, steps=4, style_weight=1.0)
    reference = features.fold_batch_norm(features.load_pretrained(1)).state_dict()
    for network in (
        task.networks["D"].backbone,
        task._lite1,
    ):  # D's eyes and the style/content network
        assert not any(parameter.requires_grad for parameter in network.parameters())
        for key, value in network.state_dict().items():
            assert torch.equal(value, reference[key]), key
    state = ckpt.load_latest(str(tmp_path / "run"))
    assert set(state["networks"]) == {"G", "P", "D"}
    assert not any("_frozen" in key or "_blocks" in key for key in state["networks"]["D"])
    assert state["networks"]["G"]["head.1.weight"].abs().sum() > 0  # G did learn


@pytest.mark.parametrize("architecture", ["resnet", "light"])
def test_generator_output_is_tanh_of_its_logits(architecture):
    torch.manual_seed(0)
    for residual in (False, True):
        model = build_model(
            architecture, {"base_channels": 8, "num_blocks": 2, "residual": residual}
        )
        x = _images(size=32)
        assert torch.equal(model(x), torch.tanh(model.logits(x)))


def test_saturation_penalty_pulls_back_locked_pixels_and_leaves_visible_colours_free():
    # within atanh(0.99) (pixel 1.3/255 from the range's end): no penalty, no gradient
    inside = torch.tensor([-2.6, -1.0, 0.0, 2.0, 2.6], requires_grad=True)
    losses.saturation_penalty(inside).backward()
    assert inside.grad is not None and not inside.grad.any()
    # a locked pixel: tanh gives it (almost) no gradient, the penalty a strong one, inwards
    locked = torch.tensor([12.0, -12.0], requires_grad=True)
    torch.tanh(locked).sum().backward()
    assert locked.grad.abs().max() < 1e-9
    locked.grad = None
    penalty = losses.saturation_penalty(locked)
    penalty.backward()
    assert penalty.item() == pytest.approx((12 - losses.SATURATION_LIMIT) ** 2)
    assert locked.grad[0] > 1 and locked.grad[1] < -1  # descent moves both towards 0


def test_contrastive_task_applies_the_saturation_penalty_only_when_weighted(tmp_path):
    from scenegan.training.tasks.base import StepBatch

    totals = {}
    for weight in (0.0, 1.0):
        task = _tiny_contrastive_run(
            tmp_path, 4, f"run-{weight}", steps=1, saturation_weight=weight
        )
        with torch.no_grad():  # lock every pixel far past tanh's useful range
            task.networks["G"].head[-1].bias.fill_(20.0)
        real = {"A": _images(size=32, seed=3), "B": _images(size=32, seed=4)}
        batch = StepBatch(1, real, torch.Generator().manual_seed(0))
        total, logged = task.generator_loss(batch)
        totals[weight] = (total.item(), logged)
    assert "saturation" not in totals[0.0][1]
    saturation = totals[1.0][1]["saturation"]
    assert saturation > 100  # logits near 20 + atanh(x): (|z| - 2.65)^2 is about 300
    expected = totals[1.0][1]["G_adv"] + totals[1.0][1]["NCE"] + saturation
    assert totals[1.0][0] == pytest.approx(expected, rel=1e-5)


def test_total_variation_charges_texture_and_stripes_not_flat_colour_or_outlines():
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert losses.total_variation(flat).item() == 0.0
    edge = flat.clone()
    edge[..., 8:] = -0.5  # one sharp vertical outline, height 0.8
    ramp = flat.clone()
    ramp[..., 4:12] = torch.linspace(0.3, -0.5, 10)[1:-1]  # the same step, spread out
    ramp[..., 12:] = -0.5
    # an outline costs its height however sharp it is: TV does not blur edges to save cost
    assert losses.total_variation(edge).item() == pytest.approx(
        losses.total_variation(ramp).item(), rel=1e-5
    )
    stripes = flat.clone()
    stripes[..., ::2] = -0.5  # the same colours, alternating every column
    assert losses.total_variation(stripes) > 7 * losses.total_variation(edge)
    noisy = flat + 0.1 * torch.randn(flat.shape, generator=torch.Generator().manual_seed(0))
    noisy.requires_grad_(True)
    losses.total_variation(noisy).backward()
    smoothed = noisy.detach() - 0.01 * noisy.grad
    assert losses.total_variation(smoothed) < losses.total_variation(noisy.detach())


def test_luminance_moved_frees_colour_and_detail_and_charges_blobs():
    photo = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    grey = photo.mean(dim=1, keepdim=True)
    recoloured = grey + (photo - grey) * torch.tensor([1.5, -0.5, 1.0]).view(1, 3, 1, 1)
    luminance = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    # move each pixel's colour back to the photo's luminance: only the hue changed
    recoloured += ((photo - recoloured) * luminance).sum(dim=1, keepdim=True)
    assert losses.luminance_moved(photo, recoloured) < 1e-5
    shuffled = photo.clone()  # detail moved around inside each 8x8 cell
    shuffled[..., :8, :8] = photo[..., :8, :8].flip(-1).flip(-2)
    assert losses.luminance_moved(photo, shuffled) < 1e-5
    blob = photo.clone()
    blob[..., 16:40, 16:40] = 1.0  # a flat white blob over a quarter of the picture
    assert losses.luminance_moved(photo, blob) > 0.05


def test_feature_statistics_distance_sees_colours_and_marks_not_where_they_are():
    rng = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, c, s, s, generator=rng) for c, s in ((24, 16), (40, 8))]
    assert losses.feature_statistics_distance(maps, maps) < 1e-6
    # the same features at other places (objects moved, the scene rearranged): no cost
    moved = [m.flatten(2)[..., torch.randperm(m.shape[-1] ** 2, generator=rng)] for m in maps]
    moved = [m.view_as(original) for m, original in zip(moved, maps, strict=True)]
    assert losses.feature_statistics_distance(moved, maps) < 1e-5
    # other colours (means) or other contrast (spreads): a cost, and a gradient toward them
    brighter = [m + 0.5 for m in maps]
    flatter = [0.5 * m for m in maps]
    assert losses.feature_statistics_distance(brighter, maps).item() == pytest.approx(0.5, rel=1e-4)
    assert losses.feature_statistics_distance(flatter, maps).item() > 0.4
    fake = [m.clone().requires_grad_(True) for m in flatter]
    target = [m.clone().requires_grad_(True) for m in maps]
    losses.feature_statistics_distance(fake, target).backward()
    assert all(t.grad is None for t in target)  # the paintings are the target, not moved
    stepped = [f.detach() - 10.0 * f.grad for f in fake]
    before = losses.feature_statistics_distance(flatter, maps)
    assert losses.feature_statistics_distance(stepped, maps) < before


def test_contrastive_task_adds_its_optional_terms_only_when_weighted(tmp_path):
    from scenegan.training.tasks.base import StepBatch
    from scenegan.training.tasks.contrastive import STYLE_DEPTH

    logged = {}
    for weight in (0.0, 3.0):
        task = _tiny_contrastive_run(
            tmp_path,
            4,
            f"terms-{weight}",
            steps=1,
            tv_weight=weight,
            structure_weight=5 * weight / 3,
            style_weight=2 * weight / 3,
            content_weight=weight / 3,
            palette_weight=weight,
        )
        real = {"A": _images(size=32, seed=3), "B": _images(size=32, seed=4)}
        batch = StepBatch(1, real, torch.Generator().manual_seed(0))
        total, logged[weight] = task.generator_loss(batch)
        fake = batch.fake["B"]
    assert not {"TV", "structure", "style", "content", "palette"} & set(logged[0.0])
    assert logged[3.0]["TV"] == pytest.approx(losses.total_variation(fake).item(), rel=1e-5)
    moved = losses.luminance_moved(real["A"], fake).item()
    assert logged[3.0]["structure"] == pytest.approx(moved, rel=1e-5)
    lite1 = features.fold_batch_norm(features.load_pretrained(1))
    fake_maps, real_maps = (
        lite1.pyramid(features.normalize(images), STYLE_DEPTH) for images in (fake, real["B"])
    )
    assert [m.shape[1] for m in fake_maps] == [24, 40, 112]  # strides 4, 8, 16
    style = losses.feature_statistics_distance(fake_maps, real_maps).item()
    assert logged[3.0]["style"] == pytest.approx(style, rel=1e-4)
    smooth = [losses.low_pass(losses.low_pass(x, 5), 5) for x in (fake, real["A"])]
    fake16, photo16 = (lite1.pyramid(features.normalize(x), STYLE_DEPTH)[-1] for x in smooth)
    content = (fake16 - photo16).abs().mean().item()
    assert logged[3.0]["content"] == pytest.approx(content, rel=1e-4)
    from scenegan.training.data import step_generator
    from scenegan.training.tasks.contrastive import PALETTE

    directions = step_generator(task.config.seed, 1, PALETTE)
    palette = losses.sliced_wasserstein(fake, real["B"], directions).item()
    assert logged[3.0]["palette"] == pytest.approx(palette, rel=1e-5)
    terms = logged[3.0]["G_adv"] + logged[3.0]["NCE"] + 2.0 * logged[3.0]["style"]
    terms += 3.0 * logged[3.0]["palette"]
    expected = terms + 3.0 * logged[3.0]["TV"] + 5.0 * logged[3.0]["structure"]
    assert total.item() == pytest.approx(expected + logged[3.0]["content"], rel=1e-5)


def test_sliced_wasserstein_compares_colours_not_places_and_charges_unseen_colours():
    rng = torch.Generator().manual_seed(0)
    painting = _images(2, 32, seed=5) * 0.6  # no pure colour in it
    shuffled = painting.flatten(2)[..., torch.randperm(32 * 32, generator=rng)].view_as(painting)

    def directions() -> torch.Generator:  # the same projection directions for each call
        return torch.Generator().manual_seed(1)

    assert losses.sliced_wasserstein(shuffled, painting, directions()) < 1e-6
    smaller = shuffled[..., ::2, ::2]  # a quarter of the pixels, about the same colours
    neon = painting.clone()
    neon[:, :, :16] = torch.tensor([-1.0, 1.0, -1.0]).view(1, 3, 1, 1)  # pure green fill
    assert losses.sliced_wasserstein(neon, painting, directions()) > 4 * losses.sliced_wasserstein(
        smaller, painting, directions()
    )
    fake = neon.clone().requires_grad_(True)
    target = painting.clone().requires_grad_(True)
    losses.sliced_wasserstein(fake, target, directions()).backward()
    assert target.grad is None and fake.grad[:, :, :16].abs().sum() > 0
    stepped = neon - 200.0 * fake.grad
    assert losses.sliced_wasserstein(stepped, painting, directions()) < losses.sliced_wasserstein(
        neon, painting, directions()
    )


def test_content_distance_frees_colour_and_flat_fills_and_charges_a_painted_over_scene(tmp_path):
    from pathlib import Path

    import numpy as np
    from PIL import Image

    sample = Path(__file__).resolve().parents[1] / "scenegan" / "sample" / "photo"
    names = sorted(sample.iterdir())[:4]
    photos = (
        torch.stack(
            [
                torch.from_numpy(np.asarray(Image.open(n).convert("RGB").resize((128, 128))).copy())
                .permute(2, 0, 1)
                .float()
                for n in names
            ]
        )
        / 127.5
        - 1
    )
    task = _tiny_contrastive_run(tmp_path, 4, steps=1, content_weight=1.0)
    grey = photos.mean(dim=1, keepdim=True)
    graded = (grey + 1.6 * (photos - grey)).clamp(-1, 1)  # a bolder palette
    flattened = F.avg_pool2d(F.pad(photos, (2, 2, 2, 2), mode="reflect"), 5, 1)  # less texture
    filled = photos.clone()
    filled[:, :, 64:, :] = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)  # grass over the ground
    with torch.no_grad():
        cost = {
            name: task._content_distance(images, photos).item()
            for name, images in (("graded", graded), ("flat", flattened), ("filled", filled))
        }
    assert cost["graded"] < 0.3 * cost["filled"] and cost["flat"] < 0.5 * cost["filled"]
    assert task._content_distance(photos, photos).item() < 1e-6


def test_the_pixel_discriminator_trains_beside_the_projected_one(tmp_path):
    from scenegan.training import checkpoint as ckpt

    seen: dict = {}

    def watch(step, task):
        if not seen:  # the pixel critic's weights after the first update
            seen["start"] = {k: v.clone() for k, v in task.networks["D_pixel"].state_dict().items()}

    task = _tiny_contrastive_run(tmp_path, 4, on_step=watch, steps=3, pixel_weight=1.0)
    assert task.discriminator_names == ("D", "D_pixel")
    pixel_params = set(map(id, task.networks["D_pixel"].parameters()))
    assert pixel_params <= {id(p) for g in task.optimizers["D"].param_groups for p in g["params"]}
    state = task.networks["D_pixel"].state_dict()
    assert any(not torch.equal(v, seen["start"][k]) for k, v in state.items())  # it learns
    assert set(ckpt.load_latest(str(tmp_path / "run"))["networks"]) == {"G", "P", "D", "D_pixel"}
