"""The one bridge from Beam's RunInference to a scenegan MODEL.

`SceneModelHandler` loads MODEL once per worker process (RunInference shares the loaded
model between the threads of a process), runs batches on CPU or CUDA (autocast on CUDA),
and returns uint8 arrays on the CPU, never tensors on the device. `NoiseModelHandler` does
the same for unconditional models, from image indices to images.

Batching is RunInference's: `batch_elements_kwargs` sets `max_batch_size` and, as the
minimum, the same size, so batches are full (BatchElements would otherwise start at one
element and grow them adaptively); a bundle's last batch may be smaller.
(`max_batch_weight` is deliberately not used: it crashes Beam 2.77.)

Failures are results, not a failed job: a batch whose forward raises (out of memory, a
shape the model refuses, a bug in a model) is run again one image at a time, and an image
that still fails, or whose output holds NaN or inf, comes back as an `InferenceFailure`
(`inference_failed` or `bad_output`, with the error) in place of its array.

`num_threads` sets torch's intra-op threads in each worker process that loads the model:
with several worker processes on one machine, each keeping torch's default (one thread
per core) oversubscribes the cores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from pipelines.options import use_storage_emulator
from scenegan import artifact
from scenegan.inference import BadOutput, Stylizer, generate_images

log = logging.getLogger(__name__)
DETAIL_CHARS = 500  # of an error's text kept in a reject row's `detail`


@dataclass(frozen=True)
class InferenceFailure:
    """What an image's prediction is when there is no output: a reject reason and detail."""

    reason: str  # inference_failed | bad_output
    detail: str

    @classmethod
    def from_error(cls, error: Exception) -> InferenceFailure:
        reason = "bad_output" if isinstance(error, BadOutput) else "inference_failed"
        return cls(reason, f"{type(error).__name__}: {error}"[:DETAIL_CHARS])


class SceneModelHandler(ModelHandler[np.ndarray, PredictionResult, Stylizer]):
    """(H, W, 3) uint8 arrays, padded to the generator's stride -> stylized arrays."""

    def __init__(
        self,
        model_uri: str,
        *,
        device: str = "auto",
        amp: str = "auto",
        max_batch_size: int = 8,
        tile_above: int = 1536,
        tile_size: int = 512,
        tile_overlap: int = 64,
        num_threads: int | None = None,
    ) -> None:
        super().__init__()
        self.model_uri, self.device, self.amp = model_uri, device, amp
        self.num_threads = num_threads
        self.max_batch_size = max_batch_size
        self.tile_above, self.tile_size, self.tile_overlap = tile_above, tile_size, tile_overlap

    def load_model(self) -> Stylizer:
        use_storage_emulator()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        loaded = artifact.load_model(self.model_uri)
        amp = None if self.amp == "auto" else self.amp == "on"
        return Stylizer(
            loaded,
            device=self.device,
            amp=amp,
            max_batch_size=self.max_batch_size,
            tile_size=self.tile_size,
            tile_overlap=self.tile_overlap,
        )

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: Stylizer,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        outputs: list[np.ndarray | InferenceFailure | None] = [None] * len(batch)
        regular = [i for i, image in enumerate(batch) if max(image.shape[:2]) <= self.tile_above]
        try:
            results = model.run_batch([batch[i] for i in regular])
        except Exception as error:  # any model error: find the image(s) at fault
            log.warning(
                "a batch of %d failed (%s); retrying one image at a time", len(regular), error
            )
            _release_memory(model)
            results = [_one(model.run_batch, [batch[i]]) for i in regular]
        for index, output in zip(regular, results, strict=True):
            outputs[index] = output
        for index, image in enumerate(batch):
            if outputs[index] is None:
                outputs[index] = _one(model.run_tiled, image)
        model_id = model.model.model_id
        return [PredictionResult(None, output, model_id) for output in outputs]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        """The arrays' own size (Beam's default pickles every batch to measure it)."""
        return sum(image.nbytes for image in batch)

    def batch_elements_kwargs(self) -> dict[str, Any]:
        size = self.max_batch_size
        return {"min_batch_size": size, "max_batch_size": size}

    def get_metrics_namespace(self) -> str:
        return "scenegan_inference"


def _one(function: Callable[[Any], Any], argument: Any) -> np.ndarray | InferenceFailure:
    """One image's output, or why there is none."""
    try:
        output = function(argument)
    except Exception as error:  # a model may raise anything
        return InferenceFailure.from_error(error)
    return output[0] if isinstance(output, list) else output


def _release_memory(model: Stylizer) -> None:
    """After a failed batch on CUDA (often out of memory), free the cached blocks first."""
    if model.device.type == "cuda":
        torch.cuda.empty_cache()


class NoiseModelHandler(ModelHandler[int, PredictionResult, artifact.LoadedModel]):
    """Image indices -> images from an unconditional MODEL; image i depends on (seed, i)."""

    def __init__(
        self, model_uri: str, *, seed: int, device: str = "auto", max_batch_size: int = 16
    ) -> None:
        super().__init__()
        self.model_uri, self.seed, self.device = model_uri, seed, device
        self.max_batch_size = max_batch_size

    def load_model(self) -> artifact.LoadedModel:
        use_storage_emulator()
        return artifact.load_model(self.model_uri)

    def run_inference(
        self,
        batch: Sequence[int],
        model: artifact.LoadedModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        by_index = dict(generate_images(model, 0, self.seed, self.device, indices=list(batch)))
        return [PredictionResult(i, by_index[i], model.model_id) for i in batch]

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"min_batch_size": 1, "max_batch_size": self.max_batch_size}
