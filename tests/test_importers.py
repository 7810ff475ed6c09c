"""Importing pytorch-CycleGAN-and-pix2pix ResNet generators."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scenegan import artifact, cli
from scenegan.artifact import ModelError


def reference_cyclegan_generator(ngf: int, blocks: int) -> nn.Sequential:
    """The layer layout of that project's ResnetGenerator (instance norm, no dropout), as
    one Sequential so its state_dict has the project's key names. Written from the layout
    its documentation and code describe; the project itself is not a dependency."""

    def norm(channels: int) -> nn.Module:
        return nn.InstanceNorm2d(channels)

    class Block(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ReflectionPad2d(1),
                nn.Conv2d(dim, dim, 3),
                norm(dim),
                nn.ReLU(True),
                nn.ReflectionPad2d(1),
                nn.Conv2d(dim, dim, 3),
                norm(dim),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv_block(x)

    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(3, ngf, 7),
        norm(ngf),
        nn.ReLU(True),
    ]
    for mult in (1, 2):
        layers += [
            nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1),
            norm(ngf * mult * 2),
            nn.ReLU(True),
        ]
    layers += [Block(ngf * 4) for _ in range(blocks)]
    for mult in (4, 2):
        layers += [
            nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1),
            norm(ngf * mult // 2),
            nn.ReLU(True),
        ]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

    return Generator().eval()


@pytest.mark.parametrize("blocks", [6, 9])
def test_imported_model_computes_what_the_original_does(blocks, tmp_path):
    torch.manual_seed(blocks)
    original = reference_cyclegan_generator(ngf=8, blocks=blocks)
    for parameter in original.parameters():  # non-trivial biases too
        nn.init.normal_(parameter, 0.0, 0.1)
    weights = tmp_path / "latest_net_G.pth"
    torch.save(original.state_dict(), weights)

    model = tmp_path / "model"
    command = ["import", "--format", "cyclegan", "--weights", str(weights), "--output", str(model)]
    assert cli.main([*command, "--target-domain", "monet"]) == 0
    loaded = artifact.load_model(str(tmp_path / "model"))

    assert loaded.info["arguments"]["num_blocks"] == blocks
    assert loaded.info["target_domain"] == "monet"
    for size in ((64, 64), (48, 80)):
        x = torch.rand(2, 3, *size) * 2 - 1
        with torch.no_grad():
            assert torch.allclose(loaded.generator(x), original(x), atol=1e-6, rtol=0)


def test_old_instance_norm_statistics_are_ignored(tmp_path):
    original = reference_cyclegan_generator(ngf=4, blocks=6)
    state = original.state_dict()
    state["model.2.running_mean"] = torch.zeros(4)  # as saved by PyTorch < 0.4
    state["model.2.running_var"] = torch.ones(4)
    torch.save(state, tmp_path / "old.pth")
    from scenegan.importers import import_cyclegan

    info = import_cyclegan(str(tmp_path / "old.pth"), str(tmp_path / "model"))
    assert info["arguments"]["base_channels"] == 4


def test_other_checkpoints_are_refused_clearly(tmp_path):
    from scenegan.importers import import_cyclegan

    torch.save({"net.0.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="not a CycleGAN ResnetGenerator"):
        import_cyclegan(str(tmp_path / "other.pth"), str(tmp_path / "model"))
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(ModelError, match="not a readable state_dict"):
        import_cyclegan(str(tmp_path / "junk.pth"), str(tmp_path / "model"))
