"""Chaos under constant-rate load (bench/chaos.py's scenarios, asserted): only the requests in flight on
what was killed may fail, nothing acknowledged is lost, and the server heals by itself."""

from __future__ import annotations

from pathlib import Path

from bench import chaos


def test_a_killed_process_op_child_fails_only_its_batch(
    models_dir: Path, lfw_dir: Path, tmp_path: Path
) -> None:
    out = chaos.process_op_child(models_dir, lfw_dir, tmp_path)
    # the dead child's worker starts another on its next batch (lazily): by the end it may not have had one
    assert out.notes["op_children_before"] == 2 and out.notes["op_children_after"] >= 1
    assert out.requests >= 150 and out.failed <= 16  # at most the in-flight batches of that child
    assert out.failed_after_heal == 0 and 0 <= out.healed_s < 5


def test_a_killed_worker_is_replaced_while_the_other_serves(
    models_dir: Path, lfw_dir: Path, tmp_path: Path
) -> None:
    out = chaos.worker(models_dir, lfw_dir, tmp_path)
    assert out.notes["workers_after"] == 2 and out.notes["replaced"] == 1
    assert out.requests >= 500 and out.failed <= 16  # only what was in flight on the dead worker
    assert out.failed_after_heal == 0


def test_a_killed_server_loses_no_acknowledged_write(models_dir: Path, lfw_dir: Path, tmp_path: Path) -> None:
    out = chaos.server_with_writes(models_dir, lfw_dir, tmp_path)
    assert out.notes["subjects_acked"] >= 3 and out.notes["faces_acked"] >= 1
    assert out.notes["lost"] == 0


def test_a_corrupt_version_is_refused_and_serving_goes_on(
    models_dir: Path, lfw_dir: Path, tmp_path: Path
) -> None:
    out = chaos.corrupt_bundle(models_dir, lfw_dir, tmp_path)
    assert out.notes["status"] == 400, out.notes
    assert out.requests >= 150 and out.failed == 0
