"""Chaos under constant-rate load: kill -9 a process-op child, a ``worker_num`` worker, the whole server
with gallery writes in flight; a corrupt model version. Counts the failed requests per event, checks that
nothing acknowledged is lost and that the server heals by itself. Writes bench/results/chaos.{json,md}.

    python bench/chaos.py        # every scenario on 127.0.0.1 (about 3 minutes on 2 cores)

tests/integration/test_chaos.py runs the same scenarios and asserts on their counts.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.integration.conftest import (  # noqa: E402
    Running,
    add_version,
    private_repository,
    start_server,
    stop_server,
)

ADMIN = "chaos-admin-key-0123456789"
W = {"x-api-key": ADMIN}
PROCESS_OPS = {"op": {"ArcFace": {"concurrency": 2, "batch_size": 8, "is_thread_op": False}}}


@dataclass
class Outcome:
    event: str
    requests: int = 0
    failed: int = 0  # non-2xx, err_no != 0, or no answer
    failed_after_heal: int = 0  # failures in the last quarter of the run: must be 0
    healed_s: float = -1.0  # from the event to the first success of the healed state
    notes: dict[str, float | int | str] = field(default_factory=dict)


class Pinger:
    """Seed requests at a constant rate from a thread pool; each on a new connection so that the
    kernel spreads them over ``worker_num`` sockets. Records (start time, ok)."""

    def __init__(self, url: str, image_b64: str, rate: float = 20.0) -> None:
        self.url, self.rate = url + "/ArcFace/prediction", rate
        self.body = {"key": ["image"], "value": [image_b64]}
        self.results: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _one(self) -> None:
        t = time.monotonic()
        try:
            r = httpx.post(self.url, json=self.body, timeout=15)
            ok = r.status_code == 200 and r.json().get("err_no") == 0
        except (httpx.HTTPError, ValueError):
            ok = False
        self.results.append((t, ok))

    def _run(self) -> None:
        with ThreadPoolExecutor(16) as pool:
            due = time.monotonic()
            while not self._stop.is_set():
                pool.submit(self._one)
                due += 1 / self.rate
                time.sleep(max(0.0, due - time.monotonic()))

    def __enter__(self) -> Pinger:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def outcome(self, event: str, at: float, start: float, end: float) -> Outcome:
        rows = sorted(self.results)
        tail = end - (end - start) / 4
        healed = [t for t, ok in rows if ok and t > at]
        return Outcome(
            event,
            requests=len(rows),
            failed=sum(not ok for _, ok in rows),
            failed_after_heal=sum(not ok for t, ok in rows if t >= tail),
            healed_s=round(healed[0] - at, 2) if healed else -1.0,
        )


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def face(lfw: Path) -> str:
    return base64.b64encode(sorted((lfw / "images").glob("*/*.jpg"))[0].read_bytes()).decode()


def under_load(run: Running, lfw: Path, seconds: float, at: float, act: Callable[[], None]) -> Outcome:
    with Pinger(run.url, face(lfw)) as ping:
        start = time.monotonic()
        time.sleep(at)
        when = time.monotonic()
        act()
        time.sleep(max(0.0, seconds - (time.monotonic() - start)))
        end = time.monotonic()
    return ping.outcome("", when, start, end)


def process_op_child(models: Path, lfw: Path, tmp: Path, seconds: float = 12) -> Outcome:
    """kill -9 one ArcFace process-op child: only its batch fails; the next call starts another."""
    run = start_server(models, tmp, PROCESS_OPS)
    try:
        ops = [c for c in children(run.proc.pid) if "spawn_main" in cmdline(c)]
        out = under_load(run, lfw, seconds, 3, lambda: os.kill(ops[0], signal.SIGKILL))
        out.event, out.notes["op_children_before"] = "kill -9 a process-op child (ArcFace)", len(ops)
        out.notes["op_children_after"] = sum("spawn_main" in cmdline(c) for c in children(run.proc.pid))
        return out
    finally:
        stop_server(run)


def worker(models: Path, lfw: Path, tmp: Path, seconds: float = 40) -> Outcome:
    """kill -9 one of two ``worker_num`` workers: the other serves on, the supervisor forks it again."""
    run = start_server(models, tmp, {"worker_num": 2}, ready_s=120)
    try:
        workers = children(run.proc.pid)
        out = under_load(run, lfw, seconds, 3, lambda: os.kill(workers[0], signal.SIGKILL))
        out.event = "kill -9 one of 2 worker_num workers"
        after = children(run.proc.pid)
        out.notes |= {"workers_after": len(after), "replaced": int(workers[0] not in after)}
        return out
    finally:
        stop_server(run)


def server_with_writes(models: Path, lfw: Path, tmp: Path, seconds: float = 4) -> Outcome:
    """kill -9 the whole server while 3 clients enrol faces; after a restart on the same data every
    acknowledged subject and face is there."""
    extra = {"auth": {"api_keys": [ADMIN]}}
    run = start_server(models, tmp, extra)
    photos = sorted((lfw / "images").glob("*/*.jpg"))[:600]  # more than 4 s of writes: some in flight
    acked: dict[str, int] = {}
    stop = threading.Event()

    def writer(k: int) -> None:
        for i, photo in enumerate(photos[k::3]):
            if stop.is_set():
                return
            sid = f"s{k}-{i}"
            try:
                r = httpx.post(run.url + "/v1/subjects", json={"id": sid, "name": sid}, headers=W, timeout=30)
                if r.status_code not in (200, 201):
                    continue
                acked[sid] = 0
                r = httpx.post(
                    f"{run.url}/v1/subjects/{sid}/faces",
                    files=[("f", (photo.name, photo.read_bytes(), "image/jpeg"))],
                    headers=W,
                    timeout=30,
                )
                if r.status_code in (200, 201):
                    acked[sid] = len(r.json().get("faces", []))
            except httpx.HTTPError:
                return

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    for pid in children(run.proc.pid):
        os.kill(pid, signal.SIGKILL)
    run.proc.kill()
    run.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    run = start_server(models, tmp, extra)
    try:
        lost = 0
        for sid, n in dict(acked).items():
            r = httpx.get(f"{run.url}/v1/subjects/{sid}/faces", headers=W, timeout=30)
            lost += r.status_code != 200 or len(r.json().get("faces", [])) < n
        faces = sum(acked.values())
        notes = {"subjects_acked": len(acked), "faces_acked": faces, "lost": lost, "photos": len(photos)}
        return Outcome("kill -9 the server with gallery writes in flight", notes=notes)
    finally:
        stop_server(run)


def corrupt_bundle(models: Path, lfw: Path, tmp: Path, seconds: float = 10) -> Outcome:
    """A new version whose model.onnx is garbage: the load is refused, the old version serves on."""
    repo = private_repository(models, tmp / "models")
    run = start_server(repo, tmp, {"auth": {"api_keys": [ADMIN]}})
    answer: dict[str, int | str] = {}

    def corrupt() -> None:
        path = add_version(repo, 2)
        (path / "model.onnx").write_bytes(os.urandom(4096))
        r = httpx.post(run.url + "/v2/repository/models/mobilefacenet/load", headers=W, timeout=60)
        answer.update(status=r.status_code, body=r.text[:200])

    try:
        out = under_load(run, lfw, seconds, 3, corrupt)
        out.event, out.notes = "a corrupt model version loaded under load", answer
        return out
    finally:
        stop_server(run)


SCENARIOS = (process_op_child, worker, server_with_writes, corrupt_bundle)


def main() -> None:
    models = Path(os.environ.get("FACEPIPE_MODELS", ROOT / "models"))
    lfw = ROOT.parent / "shared" / "data" / "lfw-dev"
    outcomes = []
    for scenario in SCENARIOS:
        with tempfile.TemporaryDirectory() as tmp:
            outcomes.append(scenario(models, lfw, Path(tmp)))
            print(json.dumps(asdict(outcomes[-1])), flush=True)
    res = {
        "machine": f"{platform.node()}, {os.cpu_count()} cores",
        "command": "python bench/chaos.py",
        "outcomes": [asdict(o) for o in outcomes],
    }
    out = ROOT / "bench" / "results"
    (out / "chaos.json").write_text(json.dumps(res, indent=2))
    report(res, out / "chaos.md")


def report(res: dict, path: Path) -> None:
    lines = [
        "# Chaos under constant-rate load",
        "",
        f"Machine: {res['machine']}. Command: `{res['command']}`. Load: seed requests at 20/s, each on a new "
        "connection, from a thread pool; the event at t = 3 s. 'After healing': failures in the last "
        "quarter of the run. The server kill: 3 clients create subjects and enrol a photo each, "
        "the server is killed -9 after 4 s, restarted on the same data, and every acknowledged subject "
        "and face looked up.",
        "",
        "| event | requests | failed | failed after healing | first success after the event | notes |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for o in res["outcomes"]:
        notes = ", ".join(f"{k}: {str(v).splitlines()[0][:90]}" for k, v in o["notes"].items())
        healed = f"{o['healed_s']} s" if o["healed_s"] >= 0 else "n/a"
        counts = f"{o['requests']} | {o['failed']} | {o['failed_after_heal']}"
        lines.append(f"| {o['event']} | {counts} | {healed} | {notes} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["report"]:  # the markdown again from the stored JSON
        report(
            json.loads((ROOT / "bench" / "results" / "chaos.json").read_text()),
            ROOT / "bench" / "results" / "chaos.md",
        )
    else:
        main()
