"""bench/results/gpu-photos.{json,md} from the JSON of ``bench/gpu_photos.py run``s (those with a server
part; the stage ceilings of every run given): each figure with its command and machine, every run's
value side by side, and the stage ceilings measured in the same run. The prose under the tables is
bench/gpu_photos_notes.md, written from these numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TARGETS = [  # (label, key, target, unit): target < 0 means at most -target
    ("BlazeFace photos, /v1/embed", "blazeface_photos_s", 8_000, "photos/s"),
    ("MTCNN photos, /v1/embed", "mtcnn_photos_s", 3_000, "photos/s"),
    ("aligned crops, KServe binary x64", "kserve_faces_s", 40_000, "faces/s"),
    ("single-image seed requests", "single_req_s", 15_000, "req/s"),
    ("p99 at half that rate, worst of 3 runs", "half_p99_worst_ms", -20, "ms"),
]
CEILINGS = {  # the measure's ceiling in the same run (bench/gpu_stages.py)
    "blazeface_photos_s": ("chain_blazeface_gpu_decode_align_b64", "one thread, no HTTP"),
    "kserve_faces_s": ("embed_net_fp16_b512", "the embedder alone, b512"),
}
NOTES = Path(__file__).with_name("gpu_photos_notes.md")
STAGES = [  # (stage, CPU key, GPU key)
    (
        "decode 250x250 JPEG (CPU: 1 thread / 16 threads; GPU: nvJPEG b64 / 4 threads x b64)",
        "decode_photo_cpu_1thread",
        "decode_photo_nvjpeg_b64",
    ),
    ("", "decode_photo_cpu_threads16", "decode_photo_nvjpeg_b64_threads4"),
    (
        "decode 112x112 crop JPEG (CPU 1 / 16 threads; nvJPEG b256)",
        "decode_crop_cpu_1thread",
        "decode_crop_nvjpeg_b256",
    ),
    ("", "decode_crop_cpu_threads16", ""),
    (
        "BlazeFace input: pad + INTER_AREA to 128 (b64)",
        "blazeface_square_cpu_1thread",
        "blazeface_square_gpu_b64",
    ),
    ("BlazeFace net alone, fp16, b128", "", "blazeface_net_fp16_b128"),
    (
        "BlazeFace op: input, net, decoding, NMS (b64)",
        "blazeface_op_cpu_images_b64",
        "blazeface_op_gpu_images_b64",
    ),
    ("align: ArcFace warp per face (b64)", "align_cpu_1thread", "align_gpu_b64"),
    (
        "embedder alone, fp16, b256 (host crops / crops on the GPU)",
        "embed_net_fp16_b256_host_crops",
        "embed_net_fp16_b256",
    ),
    ("embedder alone, fp16, b512", "", "embed_net_fp16_b512"),
    (
        "MTCNN detect, b32 (P-Net per image / grouped by size)",
        "mtcnn_detect_per_image_b32",
        "mtcnn_detect_grouped_b32",
    ),
    (
        "BlazeFace photo chain, one thread, b64 (CPU decode+align / GPU)",
        "chain_blazeface_cpu_decode_align_b64",
        "chain_blazeface_gpu_decode_align_b64",
    ),
]


def best(server: dict, prefix: str, key: str) -> dict:
    return max((v for k, v in server.items() if k.startswith(prefix)), key=lambda v: v[key])


def summary(server: dict) -> dict[str, Any]:
    out: dict[str, Any] = {
        "blazeface_photos_s": best(server, "v1_embed_photos_blazeface", "qps")["qps"],
        "mtcnn_photos_s": best(server, "v1_embed_photos_mtcnn", "qps")["qps"],
    }
    if "kserve_binary64_c32" in server:
        halves = [server[f"seed_half_run{k}"] for k in (1, 2, 3)]
        out |= {
            "kserve_faces_s": best(server, "kserve", "per_s")["per_s"],
            "single_req_s": best(server, "seed_single_c", "qps")["qps"],
            "half_p99_ms": [h["p99_ms"] for h in halves],
            "half_p99_worst_ms": max(h["p99_ms"] for h in halves),
            "half_p50_ms": [h["p50_ms"] for h in halves],
            "arcface_queue_p99_ms": [h["arcface_queue_p99_ms"] for h in halves],
            "arcface_run_p99_ms": [h["arcface_run_p99_ms"] for h in halves],
            "sampled_p99_ms": [h["sampled_total_p99_ms"] for h in halves],
        }
    repeat = [v["qps"] for k, v in server.items() if k.startswith("repeat_blazeface")]
    if repeat:
        out["blazeface_repeat_s"] = repeat[0]
    return out


def _num(v: Any, unit: str = "") -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, list):
        return " / ".join(_num(x, unit) for x in v)
    return f"{v:.1f}" if unit == "ms" else f"{v:,.0f}"


def target_rows(cols: list[dict]) -> list[str]:
    names = [c["_name"] for c in cols]
    rows = [f"| measure | {' | '.join(names)} | target | met |", "| --- |" + " --- |" * (len(names) + 2)]
    for label, key, target, unit in TARGETS:
        cells, met = [], {}
        for c in cols:
            v, extra = c["_sum"].get(key), ""
            ceil = CEILINGS.get(key)
            if ceil and v is not None and ceil[0] in c.get("stages", {}):
                top = c["stages"][ceil[0]]
                extra = f" ({100 * v / top:.0f} % of {top:,.0f}, {ceil[1]})"
            cells.append(_num(v, unit) + extra)
            if v is not None:
                ok, n = met.get(c["_layout"], (0, 0))
                met[c["_layout"]] = (ok + (v >= target if target >= 0 else v <= -target), n + 1)
        t = f"≤ {-target} {unit}" if target < 0 else f"≥ {target:,} {unit}"
        said = ", ".join(f"{lay} {ok} of {n}" for lay, (ok, n) in met.items())
        rows.append(f"| {label} | {' | '.join(cells)} | {t} | {said} |")
    return rows


def stage_rows(runs: list[dict]) -> list[str]:
    names = [r["_name"] for r in runs if "stages" in r]
    rows = [
        f"| stage | CPU path: {' / '.join(names)} | GPU path: {' / '.join(names)} |",
        "| --- | --- | --- |",
    ]
    for name, cpu, gpu in STAGES:
        cells = [
            " / ".join(_num(r["stages"].get(k)) for r in runs if "stages" in r) if k else ""
            for k in (cpu, gpu)
        ]
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return rows


def profile_rows(name: str, profile: dict) -> list[str]:
    rows = [
        f"| {name}: pipeline/stage | photos | mean batch | op time ms/photo | queue wait ms/photo |",
        "| --- | --- | --- | --- | --- |",
    ]
    for stage, v in sorted(profile.items()):
        if isinstance(v, dict) and stage.startswith("photos-"):
            rows.append(
                f"| {stage} | {v['items']:,.0f} | {v['mean_batch']:.1f} | {v['compute_ms_per_item']:.2f} | "
                f"{v['wait_ms_per_item']:.2f} |"
            )
    return rows


def columns(runs: list[dict]) -> list[dict]:
    """One column per server layout a run measured: the shipped bench config (``server_gpu_path``)
    and, where the run had ``--tuned``, the tuned photo layout (``server_gpu_tuned``)."""
    cols = []
    for r in runs:
        for part, layout in (("server_gpu_path", "shipped"), ("server_gpu_tuned", "tuned")):
            server = r.get(part)
            if isinstance(server, dict) and "error" not in server:
                r["_sum" if layout == "shipped" else "_sum_tuned"] = s = summary(server)
                name = r["_name"] + (f", {layout}" if "server_gpu_tuned" in r else "")
                cols.append(
                    {"_name": name, "_layout": layout, "_sum": s, "_server": server}
                    | {"stages": r.get("stages", {})}
                )
    return cols


def report(paths: list[Path], out: Path) -> None:
    runs = [json.loads(p.read_text()) for p in paths]
    for i, (r, p) in enumerate(zip(runs, paths, strict=True)):
        r["_name"], r["_file"] = f"run {i + 1}", p.name
    cols = columns(runs)
    (out / "gpu-photos.json").write_text(json.dumps({"runs": runs}, indent=2))
    last = runs[-1]
    lines = [
        "# GPU photo pipeline: nvJPEG decode, batched warps, crops kept on the GPU, grouped P-Net",
        "",
        f"Machine: {last['machine']}; torch {last['torch']}, torchvision {last['torchvision']}; driver "
        "580.159.04. Command on the device: `bash bench/gpu_device.sh [--cpu-path] [--tuned]` in a copy "
        "of this tree (the script says what travels with it), i.e. "
        "`python bench/gpu_photos.py run [--cpu-path] [--tuned]` (after `python bench/gpu_h100.py "
        "prepare` here; the script names the wheels it installs). Runs, in order: "
        + "; ".join(f"{r['_name']} `{r['_file']}` (`{r['command']}`)" for r in runs)
        + ". Server: 12 processes under CUDA MPS, every model op on CUDA in fp16, `op.decode` and "
        "`op.align` with `device_type: 1` (bench/gpu_photos.py `photo_config`; `tuned`: its `TUNED` "
        "on top; per-run op settings in the JSON), server and load generator on one machine; 250x250 "
        "LFW photos, `max_faces=1`.",
        "",
        "## Targets",
        "",
        *target_rows(cols),
        "",
        "## Stages, items per second, one process (bench/gpu_stages.py; same run as the server numbers)",
        "",
        *stage_rows(runs),
        "",
        "## Where the photo path's time goes: /metrics of all 12 server processes, over all levels",
        "",
    ]
    for c in cols:
        lines += [*profile_rows(f"{c['_name']}, GPU path", c["_server"].get("profile_photos", {})), ""]
    for r in runs:
        cpu = r.get("server_cpu_path")
        if isinstance(cpu, dict) and "profile_photos" in cpu:
            lines += [*profile_rows(f"{r['_name']}, CPU decode + align", cpu["profile_photos"]), ""]
    for r in runs:
        t = r.get("tests")
        if t:
            lines.append(f"Device tests ({r['_name']}): `{t.get('command', '')}`, exit {t.get('rc')}.")
    lines.append("")
    if NOTES.exists():
        lines.append(NOTES.read_text())
    (out / "gpu-photos.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
