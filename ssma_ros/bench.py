"""ssma-bench's measurements: model latency per backend and the node's end-to-end figures.

    ssma-bench model            # per backend/precision, lite vs full, unpruned vs pruned
    ssma-bench node             # segment_node on a 640x480 30 Hz synthetic camera
    ssma-bench all --write docs/BENCHMARKS.md
    ssma-bench data             # the synthetic scene generator, frames per second per condition

Every latency is the median of interleaved runs after warm-up (ssma_ros.measure): the variants of
one table take turns, so all of them see the same background load, and ratios are measured in one
run. fp32 rows on a GPU are fp32, not TF32 (the runtime's rule: fp16 is the fast choice).
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from ssma_ros.demo import DemoConfig, Listener
from ssma_ros.measure import interleaved_medians

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "models" / "default"
PAPER_NOTE = (
    "Reference point: the paper reports 101.95 ms for the full SSMA at 768x384 on an NVIDIA "
    "TITAN X (Pascal) with its TensorFlow implementation; compare with the `full SSMA at 384x768` "
    "table."
)
GPU_NOTE = (
    "No GPU on this machine, so no GPU rows: on one, the same command adds torch CUDA fp32/fp16 "
    "and onnxruntime CUDA to every table, and the full SSMA at 384x768 to compare with the "
    "paper's 101.95 ms (TITAN X Pascal, 768x384)."
)
#: The device of the GPU rows.
GPU = "cuda"


def machine() -> str:
    """Describe this machine: CPU, cores, GPU and the library versions."""
    import onnxruntime
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}, {os.cpu_count()} cores; GPU: {gpu}; Python {platform.python_version()}, torch "
        f"{torch.__version__}, onnxruntime {onnxruntime.__version__}"
    )


def variants(
    model, inputs, onnx_path: Path | None, threads: int
) -> dict[str, Callable[[], object]]:
    """Return the ways to run one model here: torch eager and tuned, onnxruntime; GPU ones."""
    import onnxruntime as ort
    import torch

    from ssma_ros.runtime.onnxruntime_backend import CPU_EP, CUDA_EP, create_session, cuda_provider

    torch.set_num_threads(threads)
    fns: dict[str, Callable[[], object]] = {}

    def eager():
        with torch.inference_mode():
            model(*inputs)

    fns["torch eager (cpu, fp32)"] = eager
    # The best CPU settings found for torch: a frozen TorchScript graph (conv+BN folded) in
    # channels-last memory format.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", torch.jit.TracerWarning
        )  # shape checks frozen at this size: fine
        tuned = torch.jit.optimize_for_inference(
            torch.jit.freeze(torch.jit.trace(model, inputs, strict=False).eval())
        )
        cl_inputs = tuple(x.contiguous(memory_format=torch.channels_last) for x in inputs)

    def tuned_run():
        with torch.inference_mode():
            tuned(*cl_inputs)

    fns["torch frozen+channels_last (cpu, fp32)"] = tuned_run
    if onnx_path is not None:
        session = create_session(onnx_path, [CPU_EP], threads)
        names = [i.name for i in session.get_inputs()]
        feeds = {n: x.numpy() for n, x in zip(names, inputs)}
        fns["onnxruntime (cpu, fp32)"] = lambda: session.run(None, feeds)
        if CUDA_EP in ort.get_available_providers():
            gpu_session = create_session(onnx_path, [cuda_provider(0)], threads)
            fns["onnxruntime (cuda, fp32)"] = lambda: gpu_session.run(None, feeds)
    if torch.cuda.is_available():
        fns.update(cuda_variants(model, inputs))
    return fns


def cuda_variants(model, inputs) -> dict[str, Callable[[], object]]:
    """Return torch on the GPU in fp32 (not TF32) and fp16; `model` itself stays where it is."""
    import torch

    from ssma_ros.runtime.torch_backend import disable_tf32

    disable_tf32(torch)
    fns: dict[str, Callable[[], object]] = {}
    for dtype, label in ((torch.float32, "fp32"), (torch.float16, "fp16")):
        # A copy: Module.to moves in place, and the CPU rows still run `model`.
        net = copy.deepcopy(model).to(GPU, dtype)
        gpu_inputs = tuple(x.to(GPU, dtype) for x in inputs)

        def run(net=net, gpu_inputs=gpu_inputs):
            with torch.inference_mode():
                net(*gpu_inputs)
            torch.cuda.synchronize()

        fns[f"torch (cuda, {label})"] = run
    return fns


def bench_models(
    bundle: Path, runs: int, warmup: int, threads: int
) -> list[tuple[str, dict[str, float]]]:
    """Time every model case of this machine with every way to run it; (title, medians) each."""
    import torch

    from ssma_ros.data.synthetic import CLASSES
    from ssma_ros.export.onnx import export_onnx
    from ssma_ros.model import build_model
    from ssma_ros.model.checkpoint import load_checkpoint
    from ssma_ros.model.info import count_flops, count_params, example_inputs

    cases = [
        ("lite SSMA, unpruned", lambda: build_model("ssma", "lite", len(CLASSES)), 240, 320, True)
    ]
    pruned = Path(bundle) / "model.pt"
    if pruned.is_file():
        cases.append(
            (
                "lite SSMA, pruned (default bundle)",
                lambda: load_checkpoint(pruned)[0],
                240,
                320,
                True,
            )
        )
    cases.append(
        ("lite SSMA, unpruned", lambda: build_model("ssma", "lite", len(CLASSES)), 480, 640, True)
    )
    # Full size on a CPU: torch only (its ONNX export alone takes minutes); GPUs: every backend.
    cases.append(
        (
            "full SSMA",
            lambda: build_model("ssma", "full", len(CLASSES)),
            240,
            320,
            torch.cuda.is_available(),
        )
    )
    if torch.cuda.is_available():
        cases.append(
            ("full SSMA", lambda: build_model("ssma", "full", len(CLASSES)), 384, 768, True)
        )

    results = []
    for name, make, height, width, with_onnx in cases:
        model = make().eval()
        inputs = tuple(torch.randn_like(x) for x in example_inputs(model, height, width))
        case_runs = runs if "full" not in name or torch.cuda.is_available() else max(3, runs // 10)
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = (
                export_onnx(model, Path(tmp) / "m.onnx", height, width) if with_onnx else None
            )
            medians = interleaved_medians(
                variants(model, inputs, onnx_path, threads), warmup, case_runs
            )
        params = count_params(model)[1]
        flops = count_flops(model, height, width)
        title = (
            f"{name} at {height}x{width}: {params / 1e6:.2f} M params, "
            f"{flops / 1e9:.2f} GFLOPs, median of {case_runs}"
        )
        print(f"\n{title}")
        base = medians["torch eager (cpu, fp32)"]
        for variant, seconds in medians.items():
            print(
                f"  {variant:42s} {seconds * 1e3:9.1f} ms {1 / seconds:8.1f} fps  "
                f"x{base / seconds:5.2f} vs eager"
            )
        results.append((title, medians))
    return results


def bench_data(
    size: tuple[int, int], runs: int, warmup: int, strength: float = 1.0, seed: int = 0
) -> dict[str, dict[str, tuple[float, float]]]:
    """Time the synthetic scene generator per condition on one thread: (wall, CPU) seconds.

    First with glibc's default allocator settings, then after synthetic.tune_allocator() (what a
    training data loader calls once per worker) where it applies; the conditions take turns,
    each rendering scenes 0, 1, 2, ... of its own.
    """
    import itertools

    import cv2

    from ssma_ros.data import synthetic

    cv2.setNumThreads(1)
    scenes = synthetic.SyntheticScenes(*size, seed=seed)

    def renderer(condition: str) -> Callable[[], object]:
        indices = itertools.count()  # each condition renders scenes 0, 1, 2, ...
        return lambda: scenes.sample(next(indices), condition, strength)

    def table() -> dict[str, tuple[float, float]]:
        wall, cpu = (
            interleaved_medians(
                {c: renderer(c) for c in synthetic.CONDITIONS}, warmup, runs, clock
            )
            for clock in (time.perf_counter, time.thread_time)
        )
        return {c: (wall[c], cpu[c]) for c in synthetic.CONDITIONS}

    height, width = size
    tables = {"default allocator": table()}
    if synthetic.tune_allocator():
        tables["after tune_allocator()"] = table()
    print(f"synthetic scenes {height}x{width}, median of {runs} frames per condition, 1 thread")
    for title, rows in tables.items():
        print(f"-- {title}")
        print(f"{'condition':>10} {'wall ms':>9} {'wall fps':>9} {'cpu ms':>8} {'cpu fps':>8}")
        for condition, (wall, cpu) in rows.items():
            print(f"{condition:>10} {1e3 * wall:9.2f} {1 / wall:9.1f}", end="")
            print(f" {1e3 * cpu:8.2f} {1 / cpu:8.1f}")
    return tables


#: What the listener subscribes to in each node run: a navigation stack's outputs, then RViz's too
#: (whether it subscribes to the overlay).
NODE_RUNS = {"mask + confidence": False, "mask + confidence + overlay": True}


def bench_node(
    bundle: Path,
    rate: float,
    size: tuple[int, int],
    duration: float,
    repeats: int,
    threads: int,
) -> dict[str, dict]:
    """Run segment_node on the synthetic camera `repeats` times per NODE_RUNS entry.

    The entries take turns, so both see the same background load; returns the median of each
    figure per entry. The listener only times what arrives: on a small CPU a consumer's own work
    on each mask runs on the cores the node needs and shows up in the node's figures (ssma-demo,
    which scores every mask, shows how much).
    """
    figures: dict[str, list[dict]] = {label: [] for label in NODE_RUNS}
    for repeat in range(repeats):
        for label, overlay in NODE_RUNS.items():
            config = DemoConfig(
                duration=duration,
                rate=rate,
                size=size,
                backend="onnxruntime",
                cpu_threads=threads,
                bundle=str(bundle),
                overlay=overlay,
                score=False,
                out=Path(tempfile.mkdtemp(prefix="ssma-bench-node-")),
            )
            figures[label].append(node_figures(Listener().run(config)))
            print(
                f"  run {repeat + 1}/{repeats} ({label}): "
                f"p95 {figures[label][-1]['latency_p95_ms']:.0f} ms, "
                f"overhead {100 * figures[label][-1]['overhead_share']:.0f} %"
            )
    runs = {label: combine(runs) for label, runs in figures.items()}
    for label, combined in runs.items():
        print(
            f"\nsegment_node end to end, onnxruntime on the CPU, listening to {label} "
            f"(median of {repeats} runs):"
        )
        for key, value in combined.items():
            print(
                f"  {key:30s} {value:.3f}" if isinstance(value, float) else f"  {key:30s} {value}"
            )
    return runs


def node_figures(summary: dict) -> dict:
    """Derive the node's figures (stage times, overhead shares, targets) from a demo summary."""
    node = summary["node"]
    inputs, inference, output, process = (
        float(node[f"{k}_p50_ms"]) for k in ("input", "inference", "output", "process")
    )
    inference_cpu, process_cpu = (float(node[f"{k}_cpu_p50_ms"]) for k in ("inference", "process"))
    # The two workers overlap: a frame's outputs are made while the model runs on the next one,
    # so the time between frames is the longer stage, not their sum.
    stage = max(inputs + inference, output)
    return {
        "camera": summary["camera"],
        "dds_profile": summary["dds_profile"],
        "output_rate_hz": summary["output_rate_hz"],
        "latency_p50_ms": summary["latency_p50_ms"],
        "latency_p95_ms": summary["latency_p95_ms"],
        "backend_p50_ms": inference,
        "frame_p50_ms": process,
        "input_p50_ms": inputs,
        "output_stage_p50_ms": output,
        "overhead_share": 1.0 - inference / process,
        # The same work against the time between camera frames, the budget each frame has.
        "frame_period_share": (inputs + output) * summary["rate_hz"] / 1000.0,
        # The same in CPU time of the worker threads: the work itself, not the waits for a core.
        "input_cpu_p50_ms": float(node["input_cpu_p50_ms"]),
        "output_cpu_p50_ms": float(node["output_cpu_p50_ms"]),
        "overhead_cpu_share": 1.0 - inference_cpu / process_cpu,
        "critical_path_overhead_share": 1.0 - inference / stage,
        "node_cpu_ms_per_frame": summary["node_cpu_ms_per_frame"],
        # The backend call runs on one thread here (cpu_threads 1), so its time is its CPU time.
        "process_overhead_share": 1.0 - inference / summary["node_cpu_ms_per_frame"],
        "rate_hz": summary["rate_hz"],
        "p95_target_ms": 1.5 * inference + 20.0,
        "dropped_stale": int(node["dropped_stale"]),
        "frames_out": int(node["frames_out"]),
    }


def combine(runs: list[dict]) -> dict:
    """Combine the figures of repeated runs: the median of each number (text from the first run).

    The figures that carry targets also get their range, as `<name>_range` (min, max).
    """
    combined = {}
    for key, value in runs[0].items():
        numbers = [r[key] for r in runs]
        combined[key] = statistics.median(numbers) if isinstance(value, (int, float)) else value
    for key in ("latency_p95_ms", "overhead_share", "overhead_cpu_share"):
        combined[f"{key}_range"] = (min(r[key] for r in runs), max(r[key] for r in runs))
    combined["repeats"] = len(runs)
    return combined


def write_markdown(path: Path, models, node, command: str) -> None:
    """Write the model tables and the node table as docs/BENCHMARKS.md is."""
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `{command}` (written by it; medians of interleaved runs after warm-up, "
        "batch 1).",
        "",
        GPU_NOTE if "GPU: none" in machine() else PAPER_NOTE,
        "",
    ]
    for title, medians in models:
        lines += [
            f"## {title}",
            "",
            "| backend | ms | frames/s | speed vs torch eager |",
            "|---|---:|---:|---:|",
        ]
        base = medians["torch eager (cpu, fp32)"]
        lines += [
            f"| {v} | {s * 1e3:.1f} | {1 / s:.1f} | {base / s:.2f}x |" for v, s in medians.items()
        ]
        lines.append("")
    if node:
        first = next(iter(node.values()))
        lines += [
            "## segment_node end to end",
            "",
            f"`ssma-bench node`: the default bundle with onnxruntime on the CPU, a "
            f"{first['camera']} synthetic RGB-D camera over Fast DDS, camera, node and a listener "
            "that only times what arrives in separate processes as on a robot, Fast DDS profile "
            f"`{Path(first['dds_profile']).name}`. Each figure is the median of "
            f"{first['repeats']} runs per set of subscribed outputs, the sets taking turns; "
            "brackets give the range over the runs. The CPU-time figures count the whole backend "
            "call only with `--threads 1` (other threads of its pool are not the workers').",
            "",
            "| figure | " + " | ".join(f"listening to {label}" for label in node) + " | target |",
            "|---|" + "---:|" * len(node) + "---|",
        ]
        rows = [
            (
                "output rate",
                lambda f: f"{f['output_rate_hz']:.1f} Hz",
                "as fast as the model allows",
            ),
            ("latency stamp-to-mask p50", lambda f: f"{f['latency_p50_ms']:.0f} ms", ""),
            (
                "latency stamp-to-mask p95",
                lambda f: (
                    f"{f['latency_p95_ms']:.0f} ms ({_range(f, 'latency_p95_ms')}; "
                    f"target {f['p95_target_ms']:.0f})"
                ),
                "<= 1.5 x backend + 20 ms",
            ),
            ("backend call p50", lambda f: f"{f['backend_p50_ms']:.1f} ms", ""),
            ("decoding + encoding the inputs p50", lambda f: f"{f['input_p50_ms']:.1f} ms", ""),
            (
                "outputs p50 (output worker, beside the next inference)",
                lambda f: f"{f['output_stage_p50_ms']:.1f} ms",
                "",
            ),
            ("work per frame p50 (both workers)", lambda f: f"{f['frame_p50_ms']:.1f} ms", ""),
            (
                "node overhead: work outside the backend call / work per frame",
                lambda f: (
                    f"{100 * f['overhead_share']:.1f} % ({_range(f, 'overhead_share', 100)})"
                ),
                "<= 15 %",
            ),
            (
                "the same in CPU time of the workers (inputs / outputs p50)",
                lambda f: (
                    f"{100 * f['overhead_cpu_share']:.1f} % "
                    f"({_range(f, 'overhead_cpu_share', 100)}; "
                    f"{f['input_cpu_p50_ms']:.1f} / {f['output_cpu_p50_ms']:.1f} ms)"
                ),
                "<= 15 %",
            ),
            (
                "the same work outside the backend call / camera frame period",
                lambda f: (
                    f"{100 * f['frame_period_share']:.1f} % (of {1000 / f['rate_hz']:.1f} ms)"
                ),
                "",
            ),
            (
                "node overhead on the critical path: 1 - backend / longer worker stage",
                lambda f: f"{100 * f['critical_path_overhead_share']:.1f} %",
                "",
            ),
            (
                "node process CPU per frame (workers, executor, DDS threads)",
                lambda f: f"{f['node_cpu_ms_per_frame']:.1f} ms",
                "",
            ),
            (
                "node process overhead: 1 - backend / process CPU per frame",
                lambda f: f"{100 * f['process_overhead_share']:.1f} %",
                "",
            ),
            (
                "stale pairs dropped / frames out",
                lambda f: f"{f['dropped_stale']:.0f} / {f['frames_out']:.0f}",
                "bounded: one-slot mailboxes",
            ),
        ]
        lines += [
            f"| {name} | " + " | ".join(cell(f) for f in node.values()) + f" | {target} |"
            for name, cell, target in rows
        ]
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def _range(figures: dict, key: str, scale: float = 1.0) -> str:
    low, high = figures[f"{key}_range"]
    digits = 1 if scale == 100 else 0  # shares to a tenth of a percent: targets sit at 15 %
    return f"{scale * low:.{digits}f}-{scale * high:.{digits}f}"
