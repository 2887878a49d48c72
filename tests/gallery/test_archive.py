"""The gallery archive, on both backends: export, import into an empty store of the other backend,
everything equal (crops byte for byte), re-import changes nothing, a foreign model is refused."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from facepipe.errors import Conflict, InvalidInput, NotFound
from facepipe.gallery import collection_store, writes
from facepipe.gallery.archive import export, import_archive
from facepipe.gallery.backends import open_store
from facepipe.gallery.store import NewFace, Store

MODEL = ("mobilefacenet", "1")


def other_backend(store_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if store_url.startswith("sqlite:"):
        return str(request.getfixturevalue("postgres").new_database())
    return f"sqlite:///{tmp_path / 'other.db'}"


def fill(
    store: Store, subjects: int = 10, per: int = 5, model: tuple[str, str] = MODEL, seed: int = 0
) -> None:
    """``subjects`` subjects with metadata and ``per`` faces each: random unit embeddings, random
    PNG-signed crops of varying size (every seventh face without a crop)."""
    rng = np.random.default_rng(seed)
    for s in range(subjects):
        sid = f"p{seed}-{s:02d}"
        store.write(
            lambda tx, sid=sid, s=s: writes.insert_subject(tx, sid, f"Person {s}", {"n": s, "tag": "é"})
        )
        faces = []
        for i in range(per):
            v = rng.standard_normal(128).astype(np.float32)
            crop = (
                None
                if (s * per + i) % 7 == 3
                else b"\x89PNG\r\n\x1a\n" + rng.bytes(int(rng.integers(10, 3000)))
            )
            faces.append(NewFace(v / np.linalg.norm(v), f"{sid}-img{i}", crop, {"det": float(rng.random())}))
        store.write(lambda tx, sid=sid, faces=faces: [writes.insert_face(tx, sid, model, f) for f in faces])


def snapshot(store: Store) -> dict[str, object]:
    """Everything a store holds, keyed by what survives a copy (not the face ids)."""
    subjects, _ = store.subjects(0, 10_000)
    out: dict[str, object] = {}
    for s in subjects:
        out[s.id] = (s.name, s.metadata, s.created, s.faces)
        for f in store.faces_of(s.id):
            vec = store.face_vector(f.id)
            assert vec is not None
            key = f"{s.id}/{f.image_sha256}"
            out[key] = (f.model, f.model_version, f.quality, f.created, vec[2].tobytes(), store.crop(f.id))
    return out


def test_round_trip_to_the_other_backend(
    store_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source, target = (
        open_store(store_url, tmp_path),
        open_store(other_backend(store_url, request, tmp_path), tmp_path),
    )
    fill(source)
    path = tmp_path / "g.tar.gz"
    tally = export(source, path, batch=7)
    assert (tally.subjects, tally.faces) == (10, 50)
    assert path.read_bytes()[:2] == b"\x1f\x8b" and not (tmp_path / "g.tar.gz.part").exists()  # gzip, renamed
    got = import_archive(path, target, expect=MODEL)
    assert (got.subjects, got.faces, got.subjects_kept, got.faces_kept) == (10, 50, 0, 0)
    want = snapshot(source)
    assert snapshot(target) == want  # names, metadata, times, quality, embeddings, crops byte for byte
    assert sum(1 for v in want.values() if len(v) == 6 and v[5] is None) > 0  # faces without crops too
    seq = target.last_change()
    again = import_archive(path, target)
    assert (again.subjects, again.faces, again.subjects_kept, again.faces_kept) == (0, 0, 10, 50)
    assert snapshot(target) == want and target.last_change() == seq  # nothing written, nothing logged
    source.close()
    target.close()


def test_the_import_is_logged_for_running_servers(tmp_path: Path) -> None:
    source, target = (
        open_store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path),
        open_store("sqlite:///b.db", tmp_path),
    )
    fill(source, subjects=2, per=3)
    export(source, tmp_path / "g.tar")
    import_archive(tmp_path / "g.tar", target)
    kinds = [k for _, k, _ in target.changes_since(0)]
    assert kinds.count("subject") == 2 and kinds.count("face") == 6


def test_an_archive_of_another_model_is_refused(store_url: str, tmp_path: Path) -> None:
    source, target = open_store(f"sqlite:///{tmp_path / 'src.db'}", tmp_path), open_store(store_url, tmp_path)
    fill(source, subjects=2, per=2, model=("arcface", "2"))
    export(source, tmp_path / "g.tar")
    with pytest.raises(Conflict, match="made by arcface/2, not mobilefacenet/1"):
        import_archive(tmp_path / "g.tar", target, expect=MODEL)
    fill(target, subjects=1, per=1, seed=9)  # the target holds faces of its own model
    with pytest.raises(Conflict, match="arcface/2; the target store holds faces of mobilefacenet/1"):
        import_archive(tmp_path / "g.tar", target)
    assert target.subjects(0, 100)[1] == 1  # nothing was written


def test_a_cut_short_or_foreign_archive_is_refused(tmp_path: Path) -> None:
    source, target = open_store("sqlite:///a.db", tmp_path), open_store("sqlite:///b.db", tmp_path)
    fill(source, subjects=3, per=2)
    export(source, tmp_path / "g.tar")
    with tarfile.open(tmp_path / "g.tar") as full, tarfile.open(tmp_path / "cut.tar", "w") as cut:
        for m in full.getmembers():
            if m.name != "end.json":
                cut.addfile(m, full.extractfile(m))
    with pytest.raises(InvalidInput, match="cut short"):
        import_archive(tmp_path / "cut.tar", target)
    assert target.subjects(0, 100)[1] == 3  # what it held was imported; the full one completes it
    import_archive(tmp_path / "g.tar", target)
    assert snapshot(target) == snapshot(source)
    with tarfile.open(tmp_path / "other.tar", "w") as other:
        info = tarfile.TarInfo("gallery.json")
        data = json.dumps({"format": "something-else", "version": 1, "models": []}).encode()
        info.size = len(data)
        other.addfile(info, io.BytesIO(data))
    with pytest.raises(InvalidInput, match="format 'something-else'"):
        import_archive(tmp_path / "other.tar", target)


def test_a_crop_that_does_not_match_its_sha256_is_refused(tmp_path: Path) -> None:
    source, target = open_store("sqlite:///a.db", tmp_path), open_store("sqlite:///b.db", tmp_path)
    fill(source, subjects=1, per=2)
    export(source, tmp_path / "g.tar")
    with tarfile.open(tmp_path / "g.tar") as full, tarfile.open(tmp_path / "bad.tar", "w") as bad:
        for m in full.getmembers():
            f = full.extractfile(m)
            data = f.read() if f else b""
            if m.name.startswith("crops/"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            bad.addfile(m, io.BytesIO(data))
    with pytest.raises(InvalidInput, match="does not match its sha256"):
        import_archive(tmp_path / "bad.tar", target)
    assert target.face_vector(1) is None  # the faces' batch was not written


def fill_collection(store: Store, name: str, seed: int) -> None:
    """Collection ``name`` with three subjects of its own (ids that the default collection has too)."""
    store.write(lambda tx: collection_store.insert(tx, name, 0.5, None))
    for s in range(3):
        sid = f"p0-{s:02d}"
        store.write(lambda tx, sid=sid: writes.insert_subject(tx, sid, f"{name} {sid}", {}, collection=name))
        v = np.random.default_rng([seed, s]).standard_normal(128).astype(np.float32)
        new = NewFace(v / np.linalg.norm(v), f"{name}-{s}", b"crop%d" % s)
        store.write(lambda tx, sid=sid, new=new: writes.insert_face(tx, f"{name}/{sid}", MODEL, new))


def collection_snapshot(store: Store, name: str) -> list[tuple[object, ...]]:
    subjects, _ = store.subjects(0, 100, collection=name)
    return [
        (s.id, s.name, s.faces, [(f.image_sha256, f.created) for f in store.faces_of(s.key)])
        for s in subjects
    ]


def test_a_collection_exports_alone_and_imports_into_a_named_collection(
    store_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = open_store(store_url, tmp_path)
    fill(source, subjects=3, per=2)
    fill_collection(source, "shop", 1)
    path = tmp_path / "shop.tar"
    tally = export(source, path, batch=2, collection="shop")
    assert (tally.subjects, tally.faces) == (3, 3)
    with tarfile.open(path) as tar:
        head = json.loads(tar.extractfile("gallery.json").read())  # type: ignore[union-attr]
    assert head["collection"] == "shop"
    target = open_store(other_backend(store_url, request, tmp_path), tmp_path)
    with pytest.raises(NotFound, match="collection 'shop' is not in the target"):
        import_archive(path, target)  # each row into its own collection: shop does not exist there
    target.write(lambda tx: collection_store.insert(tx, "branch", None, None))
    import_archive(path, target, into="branch")
    got = collection_snapshot(target, "branch")
    assert [(sid, faces) for sid, _, faces, _ in got] == [("p0-00", 1), ("p0-01", 1), ("p0-02", 1)]
    assert got == collection_snapshot(source, "shop")  # names, faces, created times as exported
    assert target.subjects(0, 10)[1] == 0  # nothing went to the default collection
    whole = tmp_path / "all.tar"
    export(source, whole)  # every collection, each row with its own
    target.write(lambda tx: collection_store.insert(tx, "shop", None, None))
    import_archive(whole, target)
    assert collection_snapshot(target, "shop") == collection_snapshot(source, "shop")
    assert snapshot(target) == snapshot(source)  # the default collection's, untouched by shop's
    source.close()
    target.close()
