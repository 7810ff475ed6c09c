"""The ingest pipeline, run for real on Beam's local runner over real files and Parquet."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to
from corpus import write_corpus

from pipelines import ingest, options, sources
from scenegan import cli, dataset, scenes


def run_ingest(inputs: list, output: Path, domain: str = "photo", *extra: str) -> dict:
    argv = [arg for item in inputs for arg in ("--input", str(item))]
    return ingest.run([*argv, "--domain", domain, "--output", str(output), *extra])


def images(root: Path | str, domain: str | None = None) -> pa.Table:
    table = pads.dataset(f"{root}/images", format="parquet", partitioning="hive").to_table()
    if domain is not None:
        table = table.filter(pads.field("domain") == domain)
    return table.sort_by("source_uri")


def rejects(root: Path | str) -> pa.Table:
    table = pads.dataset(f"{root}/rejects", format="parquet", partitioning="hive").to_table()
    return table.sort_by("source_uri")


def accounted(root: Path) -> dict[str, str]:
    """source_uri -> 'image' or the reject reason, asserting each input appears once."""
    rows = [(uri, "image") for uri in images(root)["source_uri"].to_pylist()]
    bad = rejects(root)
    rows += list(zip(bad["source_uri"].to_pylist(), bad["reason"].to_pylist(), strict=True))
    verdicts = dict(rows)
    assert len(verdicts) == len(rows), "an input appears more than once"
    return verdicts


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    scenes.write_scenes(folder, count=10, width=72, height=48, seed=3)
    return folder


def test_corpus_is_accounted_for_exactly(tmp_path):
    """The whole bad-input corpus: the run succeeds; every file is one row, with its reason."""
    expected = {str(path): verdict for path, verdict in write_corpus(tmp_path / "in").items()}
    result = run_ingest([tmp_path / "in"], tmp_path / "ds")
    verdicts = accounted(tmp_path / "ds")
    assert set(verdicts) == set(expected)
    by_content: dict[str, list[str]] = {}
    for uri in expected:
        by_content.setdefault(hashlib.sha256(Path(uri).read_bytes()).hexdigest(), []).append(uri)
    for uri, verdict in expected.items():
        if isinstance(verdict, str):
            assert verdicts[uri] == verdict, uri
            continue
        twins = sorted(by_content[hashlib.sha256(Path(uri).read_bytes()).hexdigest()])
        assert verdicts[uri] == ("image" if uri == twins[0] else "duplicate"), uri
    assert "duplicate" in verdicts.values()  # the corpus holds byte-identical JPEGs
    counters = result["counters"]
    assert counters["read"] == len(expected)
    assert counters["accepted"] == images(tmp_path / "ds").num_rows
    assert sum(v for k, v in counters.items() if k.startswith("rejected_")) == len(
        [v for v in verdicts.values() if v != "image"]
    )


def test_rows_follow_the_dataset_contract(tmp_path, scene_dir):
    run_ingest(
        [scene_dir],
        tmp_path / "ds",
        "photo",
        "--size",
        "40",
        "--crop",
        "--encoding",
        "jpeg",
        "--quality",
        "85",
    )
    table = images(tmp_path / "ds")
    assert table.num_rows == 10
    for row in table.to_pylist():
        source = Path(row["source_uri"]).read_bytes()
        assert row["image_id"] == hashlib.sha256(source).hexdigest()
        assert (row["width"], row["height"]) == (40, 40)
        assert (row["orig_width"], row["orig_height"], row["orig_format"]) == (72, 48, "png")
        assert row["image"][:2] == b"\xff\xd8"  # JPEG
        assert row["split"] == dataset.split_for(row["image_id"], 0.1)
        assert row["ingested_at"] is not None
    manifest = json.loads((tmp_path / "ds" / "_manifest.json").read_text())
    photo = manifest["domains"]["photo"]
    assert sum(photo["images"].values()) == 10
    assert photo["settings"]["size"] == 40 and photo["settings"]["encoding"] == "jpeg"
    assert manifest["schema_version"] == dataset.SCHEMA_VERSION


def test_max_side_keeps_the_aspect(tmp_path, scene_dir):
    run_ingest([scene_dir], tmp_path / "ds", "photo", "--max-side", "36")
    sizes = {(r["width"], r["height"]) for r in images(tmp_path / "ds").to_pylist()}
    assert sizes == {(36, 24)}


def test_rerun_is_idempotent_and_adds_only_new_files(tmp_path, scene_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted(scene_dir.iterdir())[:6]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    run_ingest([folder], tmp_path / "ds")
    first = accounted(tmp_path / "ds")
    manifest = json.loads((tmp_path / "ds" / "_manifest.json").read_text())

    again = run_ingest([folder], tmp_path / "ds")
    assert accounted(tmp_path / "ds") == first
    assert again["counters"]["already_ingested"] == 7
    assert (
        json.loads((tmp_path / "ds" / "_manifest.json").read_text())["fingerprint"]
        == (manifest["fingerprint"])
    )

    for path in sorted(scene_dir.iterdir())[6:]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "copy-of-first.png").write_bytes(sorted(scene_dir.iterdir())[0].read_bytes())
    third = run_ingest([folder], tmp_path / "ds")
    after = accounted(tmp_path / "ds")
    added = {uri: verdict for uri, verdict in after.items() if uri not in first}
    assert len(added) == 5 and {k: v for k, v in after.items() if k in first} == first
    assert added.pop(str(folder / "copy-of-first.png")) == "duplicate"  # of an existing row
    assert set(added.values()) == {"image"}
    assert third["counters"]["already_ingested"] == 7
    duplicate = rejects(tmp_path / "ds").filter(pads.field("reason") == "duplicate")
    assert duplicate["detail"].to_pylist() == [
        hashlib.sha256((folder / "copy-of-first.png").read_bytes()).hexdigest()
    ]


def test_second_domain_leaves_the_first_untouched(tmp_path, scene_dir):
    run_ingest([scene_dir], tmp_path / "ds", "photo")
    before = {p: p.read_bytes() for p in (tmp_path / "ds" / "images").rglob("*.parquet")}
    styled = tmp_path / "styled"
    scenes.write_scenes(styled, count=4, width=64, height=64, seed=4, style="cartoon")
    run_ingest([styled], tmp_path / "ds", "cartoon")
    for path, data in before.items():
        assert path.read_bytes() == data
    assert images(tmp_path / "ds", "photo").num_rows == 10
    assert images(tmp_path / "ds", "cartoon").num_rows == 4
    manifest = json.loads((tmp_path / "ds" / "_manifest.json").read_text())
    assert set(manifest["domains"]) == {"photo", "cartoon"}


def test_a_different_test_fraction_for_an_existing_domain_is_refused(tmp_path, scene_dir):
    run_ingest([scene_dir], tmp_path / "ds")
    with pytest.raises(ValueError, match="test-fraction"):
        run_ingest([scene_dir], tmp_path / "ds", "photo", "--test-fraction", "0.3")


def test_manifests_text_and_parquet(tmp_path, scene_dir):
    files = sorted(scene_dir.iterdir())
    text = tmp_path / "list.txt"
    lines = [
        str(files[0]),
        "",
        "# a comment",
        files[1].name,
        str(tmp_path / "missing.png"),
        "http://example.com/x.jpg",
    ]
    text.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe broken line\n")
    (tmp_path / files[1].name).write_bytes(files[1].read_bytes())  # relative to the manifest
    table = pa.table({"uri": [str(files[2]), str(files[3]), None]})
    pq.write_table(table, tmp_path / "list.parquet")
    pq.write_table(pa.table({"path": ["x"]}), tmp_path / "no-uri.parquet")
    run_ingest(
        [
            text,
            tmp_path / "list.parquet",
            tmp_path / "no-uri.parquet",
            tmp_path / "nothing-here-*.jpg",
        ],
        tmp_path / "ds",
    )
    verdicts = accounted(tmp_path / "ds")
    assert verdicts == {
        str(files[0]): "image",
        str(tmp_path / files[1].name): "image",
        str(tmp_path / "missing.png"): "not_found",
        f"{text}#L6": "unreadable",
        f"{text}#L7": "unreadable",
        str(files[2]): "image",
        str(files[3]): "image",
        f"{tmp_path / 'list.parquet'}#L3": "unreadable",
        str(tmp_path / "no-uri.parquet"): "unreadable",
        str(tmp_path / "nothing-here-*.jpg"): "not_found",
    }


def test_zip_and_tar_archives(tmp_path, scene_dir):
    files = sorted(scene_dir.iterdir())
    with zipfile.ZipFile(tmp_path / "scenes.zip", "w") as archive:
        for path in files[:3]:
            archive.write(path, f"train/{path.name}")
        archive.writestr("__MACOSX/._junk", b"junk")
    with tarfile.open(tmp_path / "scenes.tar.gz", "w:gz") as archive:
        for path in files[3:5]:
            archive.add(path, f"more/{path.name}")
    (tmp_path / "damaged.tar").write_bytes(_tar_bytes(files[5])[:700])
    run_ingest(
        [tmp_path / "*.zip", tmp_path / "scenes.tar.gz", tmp_path / "damaged.tar"], tmp_path / "ds"
    )
    verdicts = accounted(tmp_path / "ds")
    zipped = {f"{tmp_path / 'scenes.zip'}!/train/{p.name}" for p in files[:3]}
    tarred = {f"{tmp_path / 'scenes.tar.gz'}!/more/{p.name}" for p in files[3:5]}
    assert {u for u, v in verdicts.items() if v == "image"} == zipped | tarred
    assert verdicts[str(tmp_path / "damaged.tar")] == "unreadable"
    assert len(verdicts) == 6


def _tar_bytes(path: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(path, path.name)
    return buffer.getvalue()


def test_multi_processing_runner_gives_the_same_dataset(tmp_path, scene_dir):
    expected = {str(path): verdict for path, verdict in write_corpus(tmp_path / "in").items()}
    run_ingest([tmp_path / "in", scene_dir], tmp_path / "a")
    parallel = ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"]
    run_ingest([tmp_path / "in", scene_dir], tmp_path / "b", "photo", *parallel)
    assert accounted(tmp_path / "a") == accounted(tmp_path / "b")
    assert len(accounted(tmp_path / "b")) == len(expected) + 10
    columns = ["source_uri", "image_id", "image", "split"]
    assert images(tmp_path / "a").select(columns) == images(tmp_path / "b").select(columns)


def test_local_runs_are_pinned_away_from_prism():
    parsed = options.parse_options([], options.IngestOptions)
    pipeline = options.make_pipeline(parsed)
    assert type(pipeline.runner).__name__ == "FnApiRunner"
    dataflow = options.parse_options(["--runner", "DataflowRunner"], options.IngestOptions)
    assert not options.is_local(dataflow)


def test_graph_builds_for_dataflow_without_submitting(tmp_path):
    argv = [
        "--input",
        "gs://bucket/photos/*.jpg",
        "--domain",
        "photo",
        "--output",
        "gs://bucket/ds",
        "--runner",
        "DataflowRunner",
        "--project",
        "scenegan-test",
        "--region",
        "us-central1",
        "--temp_location",
        "gs://bucket/tmp",
        "--dry_run=True",
    ]
    parsed = options.parse_options(argv, options.IngestOptions)
    pipeline = beam.Pipeline(options=parsed)
    ingest.build(pipeline, parsed, "run-1")
    result = pipeline.run()  # DataflowRunner with --dry_run: the job is built, not sent
    job = result.job.proto
    names = {step.name for step in job.steps} or {
        t.unique_name for t in result.job.proto_pipeline.components.transforms.values()
    }
    text = json.dumps(sorted(names))
    for label in ("ExpandInputs", "Reshuffle", "DecodeImage", "ResolveDuplicates"):
        assert label in text


def test_match_inputs_transform(tmp_path, scene_dir):
    """The input expansion as a transform on its own, checked with assert_that."""
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{sorted(scene_dir.iterdir())[0]}\n")
    expected = [str(p) for p in sorted(scene_dir.iterdir())] + [
        str(sorted(scene_dir.iterdir())[0]),
        str(tmp_path / "none*"),
    ]
    pipeline = beam.Pipeline(runner=options.local_runner(options.PipelineOptions([])))
    with pipeline:
        uris = (
            pipeline
            | sources.MatchInputs([str(scene_dir), str(manifest), str(tmp_path / "none*")])
            | beam.Map(lambda item: item["source_uri"])
        )
        assert_that(uris, equal_to(expected))


def test_cli_ingest_and_bad_flags(tmp_path, scene_dir, capsys):
    assert (
        cli.main(
            [
                "ingest",
                "--input",
                str(scene_dir),
                "--domain",
                "photo",
                "--output",
                str(tmp_path / "ds"),
                "--runner",
                "DirectRunner",
            ]
        )
        == 0
    )
    assert "ingest summary" in capsys.readouterr().out
    assert images(tmp_path / "ds").num_rows == 10
    code = cli.main(
        [
            "ingest",
            "--input",
            str(scene_dir),
            "--domain",
            "photo",
            "--output",
            str(tmp_path / "ds"),
            "--size",
            "32",
            "--max-side",
            "64",
        ]
    )
    assert code == 1
    assert "not both" in capsys.readouterr().err


def test_gcs_end_to_end(tmp_path, scene_dir, gcs_bucket):
    """Inputs in a bucket, the dataset written to a bucket, read back with pyarrow."""
    from scenegan import storage

    files = sorted(scene_dir.iterdir())[:5]
    for path in files:
        storage.write_bytes(f"{gcs_bucket}/raw/{path.name}", path.read_bytes())
    storage.write_bytes(f"{gcs_bucket}/raw/bad.jpg", b"nope")
    storage.write_bytes(f"{gcs_bucket}/lists/m.txt", f"{gcs_bucket}/raw/bad.jpg\n".encode())
    out = f"{gcs_bucket}/datasets/ds"
    # One process: worker processes would each look for Google credentials first (~20 s).
    inputs = [f"{gcs_bucket}/raw/*.png", f"{gcs_bucket}/lists/m.txt"]
    result = run_ingest(inputs, out, "photo", "--direct_running_mode", "in_memory")
    assert result["counters"]["accepted"] == 5
    filesystem, path = storage.resolve(f"{out}/images")
    table = pads.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")
    rows = table.to_table().to_pylist()
    assert sorted(r["source_uri"] for r in rows) == sorted(
        f"{gcs_bucket}/raw/{p.name}" for p in files
    )
    assert json.loads(storage.read_bytes(f"{out}/_manifest.json"))["domains"]["photo"][
        "rejects"
    ] == {"not_an_image": 1}
    again = run_ingest(inputs, out, "photo", "--direct_running_mode", "in_memory")
    assert again["counters"].get("accepted", 0) == 0
    assert again["counters"]["already_ingested"] == 6
