"""The stylize pipeline, run for real: RunInference on the local runner, files, Parquet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import torch
from conftest import make_model
from corpus import write_corpus
from PIL import Image
from torch import nn

from pipelines import stylize
from pipelines.handler import InferenceFailure, SceneModelHandler
from scenegan import artifact, cli, imaging, models, scenes, storage
from scenegan.inference import BadOutput, Stylizer
from scenegan.models import IMAGE_TO_IMAGE, build_model


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return make_model(str(tmp_path_factory.mktemp("model") / "m"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    scenes.write_scenes(folder, count=6, width=80, height=60, seed=21)
    return folder


def run_stylize(model: str, inputs: list, output, *extra: str) -> dict:
    argv = [arg for item in inputs for arg in ("--input", str(item))]
    return stylize.run(
        ["--model", model, *argv, "--output", str(output), "--max-side", "64", *extra]
    )


def metadata(output) -> pa.Table:
    """Every finished run's rows (run=*/*.parquet: never a killed run's temp files)."""
    filesystem, path = storage.resolve(f"{output}/metadata")
    parts = pads.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")
    return parts.to_table().sort_by([("run_id", "ascending"), ("source_uri", "ascending")])


def test_corpus_and_photos(tmp_path, model, photos):
    expected = {str(p): v for p, v in write_corpus(tmp_path / "in").items()}
    result = run_stylize(model, [tmp_path / "in", photos], tmp_path / "out")
    rows = {row["source_uri"]: row for row in metadata(tmp_path / "out").to_pylist()}
    assert len(rows) == len(expected) + 6
    for uri, verdict in expected.items():
        row = rows[uri]
        if isinstance(verdict, str):
            assert (row["status"], row["reason"]) == ("rejected", verdict), uri
            assert row["output_uri"] == ""
        else:
            assert row["status"] == "ok", uri
    ok = [row for row in rows.values() if row["status"] == "ok"]
    assert {row["reason"] for row in ok} == {"", "duplicate_input"}  # byte-identical inputs
    for row in ok:
        image = Image.open(row["output_uri"])
        assert image.format == "JPEG" and max(image.size) <= 64
        assert image.size == (row["width"], row["height"])
        assert row["output_uri"] == f"{tmp_path / 'out'}/images/{row['image_id']}.jpg"
    files = sorted((tmp_path / "out" / "images").iterdir())
    assert len(files) == len({row["image_id"] for row in ok})
    assert result["counters"]["status_ok"] == len(ok)
    assert list((tmp_path / "out" / "report").glob("contact-*.png"))


def test_nightly_second_run_only_stylizes_new_images(tmp_path, model, photos):
    folder = tmp_path / "incoming"
    folder.mkdir()
    files = sorted(photos.iterdir())
    for path in files[:4]:
        (folder / path.name).write_bytes(path.read_bytes())
    first = run_stylize(model, [folder], tmp_path / "out")
    assert first["counters"]["status_ok"] == 4
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "images").iterdir()}
    for path in files[4:]:
        (folder / path.name).write_bytes(path.read_bytes())
    second = run_stylize(model, [folder], tmp_path / "out")
    assert second["counters"]["status_ok"] == 2
    assert second["counters"]["status_skipped"] == 4
    rows = [r for r in metadata(tmp_path / "out").to_pylist() if r["run_id"] == second["run_id"]]
    assert {r["source_uri"]: r["status"] for r in rows} == {
        str(folder / p.name): ("ok" if p in files[4:] else "skipped") for p in files
    }
    for path, stamp in written.items():
        assert path.stat().st_mtime_ns == stamp  # nothing rewritten
    other = make_model(str(tmp_path / "other"), "light")  # another model_id redoes them all
    assert run_stylize(other, [folder], tmp_path / "out")["counters"]["status_ok"] == 6


def test_sigkill_mid_run_then_rerun_accounts_for_everything_once(tmp_path):
    folder = tmp_path / "in"
    scenes.write_scenes(folder, count=30, width=160, height=120, seed=5)
    slow = make_model(str(tmp_path / "slow"), "resnet", base_channels=32, num_blocks=6)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "pipelines.stylize",
        "--model",
        slow,
        "--input",
        str(folder),
        "--output",
        str(out),
        "--max-side",
        "160",
        "--batch-size",
        "1",
        "--direct_running_mode",
        "in_memory",
        "--direct_num_workers",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (out / "images").exists() and len(list((out / "images").iterdir())) >= 3:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_images = len(list((out / "images").iterdir()))
    assert 3 <= killed_images < 30, "the kill should land mid-run"
    run_stylize(slow, [folder], out, "--max-side", "160")
    rows = metadata(out).to_pylist()
    assert sorted(r["source_uri"] for r in rows) == sorted(str(p) for p in folder.iterdir())
    assert {r["status"] for r in rows} == {"ok"}
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == sorted(f"{r['image_id']}.jpg" for r in rows)  # no partial, no extra
    for name in names:
        Image.open(out / "images" / name).load()  # every file is whole


def test_tiles_blend_without_seams_and_match_untiled():
    torch.manual_seed(1)
    loaded = artifact.LoadedModel(
        build_model("resnet", dict(base_channels=8, num_blocks=2)).eval(),
        {"model_id": "x", "task": "unpaired", "stride": 4},
    )
    ys, xs = np.mgrid[0:200, 0:264].astype(np.float32)
    smooth = np.stack([xs / 264 * 200 + 20, ys / 200 * 180 + 40, (xs + ys) / 464 * 120 + 60], -1)
    smooth = smooth.astype(np.uint8)
    stylizer = Stylizer(loaded, device="cpu", tile_size=96, tile_overlap=32)
    whole = stylizer.run_batch([smooth])[0].astype(np.float32) / 255
    tiled = stylizer.run_tiled(smooth).astype(np.float32) / 255
    assert tiled.shape == whole.shape
    difference = np.abs(tiled - whole)
    print(f"tiled vs untiled: max {difference.max():.4f}, mean {difference.mean():.5f}")
    assert difference.max() <= 0.02


@pytest.mark.slow
def test_a_4096_by_3072_image_stylizes_on_cpu_in_tiles(tmp_path):
    model = make_model(str(tmp_path / "m"), "light")
    big = np.zeros((3072, 4096, 3), np.uint8)
    big[..., 0] = np.linspace(0, 255, 4096, dtype=np.uint8)[None, :]
    big[..., 1] = np.linspace(0, 255, 3072, dtype=np.uint8)[:, None]
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=90)
    result = run_stylize(
        model,
        [tmp_path / "big.jpg"],
        tmp_path / "out",
        "--max-side",
        "0",
        "--tile-above",
        "1024",
        "--tile-size",
        "512",
    )
    assert result["counters"]["status_ok"] == 1
    (row,) = metadata(tmp_path / "out").to_pylist()
    assert (row["width"], row["height"]) == (4096, 3072)


def test_broken_models_fail_before_any_work(tmp_path, model, photos):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text(Path(model, "model.json").read_text())
    data = Path(model, "weights.pt").read_bytes()
    (broken / "weights.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(artifact.ModelError, match="damaged"):
        run_stylize(str(broken), [photos], tmp_path / "out")
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    info = json.loads(Path(model, "model.json").read_text())
    (unknown / "model.json").write_text(json.dumps({**info, "architecture": "vit-gan"}))
    (unknown / "weights.pt").write_bytes(data)
    code = cli.main(
        [
            "stylize",
            "--model",
            str(unknown),
            "--input",
            str(photos),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    assert not (tmp_path / "out").exists()


def test_dataset_input_and_paths_never_escape(tmp_path, model, photos):
    folder = tmp_path / "ds" / "images" / "domain=photo" / "split=test"
    folder.mkdir(parents=True)
    good = (sorted(photos.iterdir())[0]).read_bytes()
    table = pa.table(
        {
            "image_id": ["a" * 64, "../../../escape", "b" * 64],
            "source_uri": ["s3-like/one.png", "evil.png", "bad.png"],
            "image": [good, good, b"nope"],
        }
    )
    pq.write_table(table, folder / "part-0.parquet")
    run_stylize(model, [folder], tmp_path / "out")
    rows = {r["source_uri"]: r for r in metadata(tmp_path / "out").to_pylist()}
    assert rows["s3-like/one.png"]["status"] == "ok"
    assert rows["s3-like/one.png"]["output_uri"].endswith(f"/images/{'a' * 64}.jpg")
    assert rows["evil.png"]["status"] == "rejected"
    assert rows["bad.png"]["reason"] == "not_an_image"
    inside = {p.resolve() for p in tmp_path.rglob("*")}
    assert not any("escape" in str(p) for p in inside)
    assert len(list((tmp_path / "out" / "images").iterdir())) == 1


def test_handler_batches_and_returns_cpu_uint8(model):
    handler = SceneModelHandler(model, max_batch_size=3, tile_above=48, tile_size=32)
    assert handler.batch_elements_kwargs()["max_batch_size"] == 3
    loaded = handler.load_model()
    batch = [
        np.full((32, 48, 3), 100, np.uint8),
        np.full((32, 32, 3), 50, np.uint8),
        np.full((64, 64, 3), 200, np.uint8),
    ]  # the last one runs in tiles
    results = list(handler.run_inference(batch, loaded))
    for image, result in zip(batch, results, strict=True):
        assert isinstance(result.inference, np.ndarray) and result.inference.dtype == np.uint8
        assert result.inference.shape == image.shape
        assert result.model_id == loaded.model.model_id


def test_generate_is_reproducible_per_seed(tmp_path):
    torch.manual_seed(0)
    generator = build_model("dcgan_generator", dict(latent_dim=8, image_size=32, base_channels=8))
    path = str(tmp_path / "uncond")
    artifact.save_model(
        path,
        generator.eval(),
        task="unconditional",
        image_size=32,
        source_domain=None,
        target_domain="scenes",
        training={},
        metrics={},
    )
    for out in ("a", "b"):
        code = cli.main(
            [
                "generate",
                "--model",
                path,
                "--count",
                "5",
                "--seed",
                "3",
                "--output",
                str(tmp_path / out),
                "--format",
                "png",
                "--batch-size",
                "2",
            ]
        )
        assert code == 0
    a = {p.name: p.read_bytes() for p in (tmp_path / "a" / "images").iterdir()}
    b = {p.name: p.read_bytes() for p in (tmp_path / "b" / "images").iterdir()}
    assert a == b and len(a) == 5
    rows = metadata(tmp_path / "a").to_pylist()
    assert {r["status"] for r in rows} == {"ok"} and len(rows) == 5
    with pytest.raises(ValueError, match="noise-to-image"):
        run_stylize(path, [tmp_path], tmp_path / "c")


def test_gcs_end_to_end(tmp_path, model, photos, gcs_bucket):
    for path in sorted(photos.iterdir())[:3]:
        storage.write_bytes(f"{gcs_bucket}/nightly/in/{path.name}", path.read_bytes())
    for name in ("model.json", "weights.pt"):
        storage.write_bytes(f"{gcs_bucket}/models/m/{name}", Path(model, name).read_bytes())
    out = f"{gcs_bucket}/nightly/out"
    one = ("--direct_running_mode", "in_memory")  # worker processes would seek credentials
    first = run_stylize(f"{gcs_bucket}/models/m", [f"{gcs_bucket}/nightly/in/*.png"], out, *one)
    assert first["counters"]["status_ok"] == 3
    rows = metadata(out).to_pylist()
    for row in rows:
        data = storage.read_bytes(row["output_uri"])
        assert imaging.decode_image(data).orig_format == "jpeg"
    again = run_stylize(f"{gcs_bucket}/models/m", [f"{gcs_bucket}/nightly/in/*.png"], out, *one)
    assert again["counters"]["status_skipped"] == 3


class FaultyGenerator(nn.Module):
    """Test-only model for fault injection: a batch holding a bright red image raises (as a
    model refusing a shape or running out of memory would), a bright blue image comes out
    NaN, anything else comes out unchanged."""

    kind = IMAGE_TO_IMAGE
    stride = 1

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.config: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [-1, 1]
        means = x.mean(dim=(2, 3))  # (B, 3)
        if bool((means[:, 0] > 0.8).any()):
            raise RuntimeError("this model refuses red images")
        nan = (means[:, 2] > 0.8)[:, None, None, None]
        y = x * self.scale
        return torch.where(nan, torch.full_like(y, float("nan")), y)


@pytest.fixture
def faulty_model(tmp_path, monkeypatch) -> str:
    """FaultyGenerator saved as a normal MODEL (its architecture registered for this test;
    the runs below are in-process, `--direct_running_mode in_memory`, so workers see it)."""
    monkeypatch.setitem(models.ARCHITECTURES, "faulty", FaultyGenerator)
    path = str(tmp_path / "faulty")
    artifact.save_model(
        path,
        FaultyGenerator().eval(),
        task="unpaired",
        image_size=32,
        source_domain="photo",
        target_domain="painting",
        training={},
        metrics={},
    )
    return path


def solid(colour: tuple[int, int, int], size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), colour, np.uint8)


def test_handler_turns_model_failures_into_results(faulty_model):
    handler = SceneModelHandler(faulty_model, device="cpu", tile_above=48, tile_size=32)
    loaded = handler.load_model()
    batch = [solid((20, 200, 20)), solid((250, 10, 10)), solid((10, 10, 250)), solid((0, 90, 0))]
    batch.append(solid((250, 10, 10), 96))  # tiled, and refused tile by tile
    results = [r.inference for r in handler.run_inference(batch, loaded)]
    assert np.array_equal(results[0], batch[0]) and np.array_equal(results[3], batch[3])
    assert results[1].reason == results[4].reason == "inference_failed"
    assert "RuntimeError: this model refuses red images" in results[1].detail
    assert isinstance(results[2], InferenceFailure) and results[2].reason == "bad_output"


def test_inference_failures_become_rejected_rows_and_the_job_succeeds(tmp_path, faulty_model):
    folder = tmp_path / "in"
    folder.mkdir()
    colours = {
        "red": (250, 10, 10),
        "blue": (10, 10, 250),
        "green-1": (20, 200, 20),
        "green-2": (40, 160, 40),
        "grey": (120, 120, 120),
    }
    for name, colour in colours.items():
        Image.fromarray(solid(colour)).save(folder / f"{name}.png")
    (folder / "red-copy.png").write_bytes((folder / "red.png").read_bytes())
    (folder / "broken.png").write_bytes(b"nope")
    out = tmp_path / "out"
    argv = ["stylize", "--model", faulty_model, "--input", str(folder), "--output", str(out)]
    argv += ["--format", "png", "--batch-size", "4", "--shards", "1"]
    assert cli.main([*argv, "--direct_running_mode", "in_memory"]) == 0
    rows = {Path(r["source_uri"]).stem: r for r in metadata(out).to_pylist()}
    verdicts = {name: (r["status"], r["reason"]) for name, r in rows.items()}
    assert verdicts == {
        "red": ("rejected", "inference_failed"),
        "red-copy": ("rejected", "inference_failed"),
        "blue": ("rejected", "bad_output"),
        "green-1": ("ok", ""),
        "green-2": ("ok", ""),
        "grey": ("ok", ""),
        "broken": ("rejected", "not_an_image"),
    }
    assert "refuses red images" in rows["red"]["detail"]
    assert "NaN" in rows["blue"]["detail"]
    assert all(r["output_uri"] == "" for r in rows.values() if r["status"] == "rejected")
    written = sorted(p.name for p in (out / "images").iterdir())  # nothing partial, no black
    assert written == sorted(f"{rows[n]['image_id']}.png" for n in ("green-1", "green-2", "grey"))
    for name in ("green-1", "green-2", "grey"):
        output = np.asarray(Image.open(rows[name]["output_uri"]))
        assert np.abs(output.astype(int) - solid(colours[name])).max() <= 1


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def assert_same_pixels(ours: np.ndarray, theirs: np.ndarray, what: str = "") -> None:
    """The same pixels up to float rounding. On the CPU a convolution may split its sums
    differently when other threads run at the same time (or when the batch holds other
    images), which moves a value that sits on a rounding boundary by one level. Anything
    more is a real difference."""
    assert ours.shape == theirs.shape, what
    moved = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
    assert moved.max() <= 1 and (moved > 0).mean() < 0.01, (what, moved.max(), moved.mean())


def assert_same_pictures(folder: Path, expected: Path) -> None:
    """The same image files, with the same pixels up to float rounding."""
    names = sorted(files_of(folder))
    assert names == sorted(files_of(expected)) and names
    for name in names:
        with Image.open(folder / name) as ours, Image.open(expected / name) as theirs:
            assert_same_pixels(np.asarray(ours), np.asarray(theirs), name)


def comparable(output: Path) -> list[tuple]:
    """A run's metadata without what differs between OUTs: run ids and the OUT prefix."""
    return sorted(
        (r["source_uri"], r["image_id"], r["model_id"], r["status"], r["reason"], r["width"])
        for r in metadata(output).to_pylist()
    )


def test_several_styles_in_one_job_equal_separate_runs_and_rerun_per_style(tmp_path, model, photos):
    from scenegan.registry import promote

    promote(str(tmp_path / "registry"), "painting", model=model)
    light = make_model(str(tmp_path / "light-one"), "light")
    folder = tmp_path / "in"
    folder.mkdir()
    files = sorted(photos.iterdir())
    for path in files[:4]:
        (folder / path.name).write_bytes(path.read_bytes())
    one = ("--direct_running_mode", "in_memory", "--format", "png")
    latest = str(tmp_path / "registry" / "painting" / "latest")
    both = ["--model", latest, "--model", light]
    joint = run_stylize(both[1], [folder], tmp_path / "joint", *both[2:], *one)
    assert set(joint["styles"]) == {"painting", "light-one"}
    assert sorted(p.name for p in (tmp_path / "joint").iterdir()) == ["light-one", "painting"]
    for style, path in (("painting", model), ("light-one", light)):
        alone = tmp_path / f"alone-{style}"
        run_stylize(path, [folder], alone, *one)
        assert sorted(p.name for p in alone.iterdir()) == ["images", "metadata", "report"]
        assert files_of(tmp_path / "joint" / style / "images") == files_of(alone / "images")
        assert comparable(tmp_path / "joint" / style) == comparable(alone)
        assert joint["styles"][style]["status_ok"] == 4
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "joint").rglob("images/*")}

    for path in files[4:]:  # the next night: two new photos, and a third style
        (folder / path.name).write_bytes(path.read_bytes())
    cartoon = make_model(str(tmp_path / "third"), seed=7)
    again = run_stylize(
        both[1], [folder], tmp_path / "joint", *both[2:], "--model", f"cartoon={cartoon}", *one
    )
    counts = {
        style: (c.get("status_ok", 0), c.get("status_skipped", 0))
        for style, c in again["styles"].items()
    }
    assert counts == {"painting": (2, 4), "light-one": (2, 4), "cartoon": (6, 0)}
    for path, stamp in stamps.items():
        assert path.stat().st_mtime_ns == stamp  # nothing redone
    rows = [r for r in metadata(tmp_path / "joint" / "cartoon").to_pylist()]
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}

    with pytest.raises(ValueError, match="named 'x'"):
        run_stylize(f"x={model}", [folder], tmp_path / "refused", "--model", f"x={light}")
    assert not (tmp_path / "refused").exists()


class HugeOrNanGenerator(nn.Module):
    """In a batch of 4: image 0 -> huge but finite values (their float32 sum overflows to
    inf), image 1 -> one NaN, image 2 -> one -inf, image 3 -> the input."""

    kind = IMAGE_TO_IMAGE
    stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[0] = 3e38
        y[1, 1, 2, 3] = float("nan")
        y[2, 0, 0, 0] = -float("inf")
        return y


def test_the_output_check_rejects_nan_and_inf_but_not_huge_finite_values():
    loaded = artifact.LoadedModel(HugeOrNanGenerator(), {"stride": 1, "model_id": "t"})
    stylizer = Stylizer(loaded, device="cpu")
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(BadOutput, match=r"batch positions \[1, 2\]"):
        stylizer.run_batch(list(images))
    stylizer.generator = lambda x: HugeOrNanGenerator()(torch.cat([x, x]))[[0, 3]]
    huge, plain = stylizer.run_batch([images[0], images[3]])
    assert (huge == 255).all()  # clamped, not refused
    np.testing.assert_array_equal(plain, images[3])


def test_harness_threads_share_one_model_and_give_the_single_thread_output(
    tmp_path, photos, monkeypatch
):
    """Dataflow GPU workers run several harness threads in one process: they must load the
    model once and make what one thread makes (up to float rounding)."""
    import threading

    light = make_model(str(tmp_path / "light"), "light")
    loads, runners = [], set()
    load, run_inference = SceneModelHandler.load_model, SceneModelHandler.run_inference

    def counted_load(self):
        loads.append(1)
        return load(self)

    def counted_run(self, *args, **kwargs):
        runners.add(threading.get_ident())
        return run_inference(self, *args, **kwargs)

    monkeypatch.setattr(SceneModelHandler, "load_model", counted_load)
    monkeypatch.setattr(SceneModelHandler, "run_inference", counted_run)
    threads = ("--direct_running_mode", "multi_threading", "--direct_num_workers", "3")
    fixed = ("--batch-size", "2", "--format", "png", "--report-samples", "0")
    run_stylize(light, [photos], tmp_path / "threads", *threads, *fixed)
    assert len(loads) == 1 and len(runners) >= 2  # threads ran batches with one model
    run_stylize(light, [photos], tmp_path / "one", "--direct_running_mode", "in_memory", *fixed)
    assert_same_pictures(tmp_path / "threads" / "images", tmp_path / "one" / "images")
    assert comparable(tmp_path / "threads") == comparable(tmp_path / "one")
    assert len(files_of(tmp_path / "one" / "images")) == 6


def test_one_stylizer_run_from_several_threads_at_once_matches_serial_runs(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    loaded = artifact.load_model(make_model(str(tmp_path / "m"), "light"))
    stylizer = Stylizer(loaded, device="cpu", max_batch_size=2)
    rng = np.random.default_rng(3)
    batches = [
        [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(2)] for _ in range(8)
    ]
    serial = [stylizer.run_batch(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(stylizer.run_batch, batches))
    for alone, together in zip(serial, concurrent, strict=True):
        for a, b in zip(alone, together, strict=True):
            assert_same_pixels(b, a)


def test_a_tiled_image_on_one_thread_leaves_other_threads_batches_alone(tmp_path):
    """Tiling swaps each InstanceNorm's statistics for the whole image's and stops forward
    passes early with a hook: on a model shared by harness threads, none of that may reach
    a batch another thread runs at the same time."""
    import threading

    loaded = artifact.load_model(make_model(str(tmp_path / "m"), "light"))
    stylizer = Stylizer(loaded, device="cpu", max_batch_size=2, tile_size=32, tile_overlap=8)
    rng = np.random.default_rng(5)
    large = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    batch = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(2)]
    tiled_alone, batch_alone = stylizer.run_tiled(large), stylizer.run_batch(batch)
    tiled, batches, errors = [], [], []

    def keep(results, call, *args):
        try:
            for _ in range(15):
                results.append(call(*args))
        except Exception as error:  # reported by the assert below
            errors.append(error)

    workers = [
        threading.Thread(target=keep, args=(tiled, stylizer.run_tiled, large)),
        threading.Thread(target=keep, args=(batches, stylizer.run_batch, batch)),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors and len(tiled) == len(batches) == 15
    for out in tiled:
        assert_same_pixels(out, tiled_alone)
    for outs in batches:
        for out, alone in zip(outs, batch_alone, strict=True):
            assert_same_pixels(out, alone)
