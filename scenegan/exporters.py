"""Extra export formats next to a MODEL: ONNX and TorchScript, each verified on export.

Both take images of any height and width that are multiples of the generator's stride
(and any batch size). Each export is checked against the torch generator on random inputs
of two different sizes and refused if any output differs by more than `TOLERANCE`.

These files are for serving stacks outside scenegan (onnxruntime, libtorch). scenegan
itself only ever loads `weights.pt` + `model.json` (`scenegan.artifact`).
"""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scenegan import storage
from scenegan.artifact import ModelError
from scenegan.models import NOISE_TO_IMAGE, kind_of

TOLERANCE = 1e-4
ONNX_FILE = "generator.onnx"
TORCHSCRIPT_FILE = "generator.torchscript.pt"


def input_spec(info: dict) -> tuple[list[tuple[int, ...]], dict[int, object]]:
    """Two input shapes to verify with, and the dynamic dimensions, for a MODEL's kind:
    images (B, 3, H, W) with H, W multiples of the stride, or noise (B, latent_dim)."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    if (info.get("kind") or kind_of(info["architecture"])) == NOISE_TO_IMAGE:
        latent = int(info["arguments"].get("latent_dim", 128))
        return [(1, latent), (3, latent)], {0: batch}
    stride = int(info.get("stride", 1))
    height = torch.export.Dim("height_blocks", min=1, max=8192 // stride)
    width = torch.export.Dim("width_blocks", min=1, max=8192 // stride)
    shapes = [(1, 3, 8 * stride, 8 * stride), (2, 3, 6 * stride, 10 * stride)]
    return shapes, {0: batch, 2: stride * height, 3: stride * width}


def _max_difference(run, generator: nn.Module, shapes: list[tuple[int, ...]]) -> float:
    worst = 0.0
    generator_rng = torch.Generator().manual_seed(0)
    for shape in shapes:
        x = torch.rand(shape, generator=generator_rng) * 2 - 1
        with torch.no_grad():
            expected = generator(x).numpy()
        worst = max(worst, float(np.abs(run(x) - expected).max()))
    return worst


def export_onnx(generator: nn.Module, output: str, info: dict) -> float:
    """Write MODEL/generator.onnx with dynamic batch (and height, width); returns the
    verified max difference to torch."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ModelError(
            "--onnx needs onnx, onnxscript and onnxruntime: pip install 'scenegan[export]'"
        ) from error
    generator = generator.eval()
    shapes, dynamic = input_spec(info)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / ONNX_FILE
        program = torch.onnx.export(
            generator,
            (torch.zeros(shapes[0]),),
            dynamo=True,
            dynamic_shapes=(dynamic,),
            input_names=["input"],
            output_names=["output"],
            verbose=False,
        )
        program.save(str(path))
        data = path.read_bytes()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    difference = _max_difference(
        lambda x: session.run(None, {"input": x.numpy()})[0], generator, shapes
    )
    if difference > TOLERANCE:
        raise ModelError(f"ONNX export differs from torch by {difference:.2e} > {TOLERANCE}")
    storage.write_bytes(storage.join(output, ONNX_FILE), data)
    return difference


def export_torchscript(generator: nn.Module, output: str, info: dict) -> float:
    """Write MODEL/generator.torchscript.pt (traced, any input size); returns the verified
    max difference to torch."""
    generator = generator.eval()
    shapes, _ = input_spec(info)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(generator, torch.zeros(shapes[0]))
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        reloaded = torch.jit.load(io.BytesIO(buffer.getvalue()))
    difference = _max_difference(lambda x: reloaded(x).detach().numpy(), generator, shapes)
    if difference > TOLERANCE:
        raise ModelError(f"TorchScript export differs from torch by {difference:.2e} > {TOLERANCE}")
    storage.write_bytes(storage.join(output, TORCHSCRIPT_FILE), buffer.getvalue())
    return difference
