"""ssma-bench: model latency per backend and the node's end-to-end figures, side by side.

    ssma-bench model            # per backend/precision, lite vs full, unpruned vs pruned
    ssma-bench node             # segment_node on a 640x480 30 Hz synthetic camera
    ssma-bench all --write docs/BENCHMARKS.md

Every latency is the median of interleaved runs after warm-up: the variants of one table take
turns, so all of them see the same background load, and ratios are measured in one run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "models" / "default"
PAPER_NOTE = (
    "Reference point: the paper reports 101.95 ms for the full SSMA at 768x384 on an NVIDIA TITAN X "
    "(Pascal) with its TensorFlow implementation; compare with the `full SSMA at 384x768` table."
)
GPU_NOTE = (
    "No GPU on this machine, so no GPU rows: on one, the same command adds torch CUDA fp32/fp16 and "
    "onnxruntime CUDA to every table, and the full SSMA at 384x768 to compare with the paper's 101.95 ms "
    "(TITAN X Pascal, 768x384)."
)


def interleaved_medians(
    fns: dict[str, Callable[[], object]], warmup: int, runs: int
) -> dict[str, float]:
    """Median seconds per call of each function, the functions taking turns."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def machine() -> str:
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
    import os

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}, {os.cpu_count()} cores; GPU: {gpu}; Python {platform.python_version()}, torch "
        f"{torch.__version__}, onnxruntime {onnxruntime.__version__}"
    )


def _variants(
    model, inputs, onnx_path: Path | None, threads: int
) -> dict[str, Callable[[], object]]:
    """The ways to run one model here: torch eager, torch tuned for the CPU, onnxruntime; GPU ones."""
    import onnxruntime as ort
    import torch

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
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        feeds = {n: x.numpy() for n, x in zip(names, inputs)}
        fns["onnxruntime (cpu, fp32)"] = lambda: session.run(None, feeds)
        if "CUDAExecutionProvider" in ort.get_available_providers():
            gpu_session = ort.InferenceSession(str(onnx_path), providers=["CUDAExecutionProvider"])
            fns["onnxruntime (cuda, fp32)"] = lambda: gpu_session.run(None, feeds)
    if torch.cuda.is_available():
        gpu_model = model.to("cuda")
        for dtype, label in ((torch.float32, "fp32"), (torch.float16, "fp16")):
            gpu_inputs = tuple(x.to("cuda", dtype) for x in inputs)
            net = gpu_model if dtype == torch.float32 else _half_copy(gpu_model)

            def run(net=net, gpu_inputs=gpu_inputs):
                with torch.inference_mode():
                    net(*gpu_inputs)
                torch.cuda.synchronize()

            fns[f"torch (cuda, {label})"] = run
    return fns


def _half_copy(model):
    import copy

    return copy.deepcopy(model).half()


def bench_models(args) -> list[tuple[str, dict[str, float]]]:
    import torch

    from ssma_ros.data.synthetic import CLASSES
    from ssma_ros.export.onnx import export_onnx
    from ssma_ros.model import build_model
    from ssma_ros.model.checkpoint import load_checkpoint
    from ssma_ros.model.info import count_flops, count_params, example_inputs

    cases = [
        ("lite SSMA, unpruned", lambda: build_model("ssma", "lite", len(CLASSES)), 240, 320, True)
    ]
    pruned = Path(args.bundle) / "model.pt"
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
    # Full size on a CPU: torch only (its ONNX export alone takes minutes here); GPUs get every backend.
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
        runs = (
            args.runs
            if "full" not in name or torch.cuda.is_available()
            else max(3, args.runs // 10)
        )
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = (
                export_onnx(model, Path(tmp) / "m.onnx", height, width) if with_onnx else None
            )
            medians = interleaved_medians(
                _variants(model, inputs, onnx_path, args.threads), args.warmup, runs
            )
        params = count_params(model)[1]
        flops = count_flops(model.cpu().float(), height, width)
        title = f"{name} at {height}x{width}: {params / 1e6:.2f} M params, {flops / 1e9:.2f} GFLOPs, median of {runs}"
        print(f"\n{title}")
        base = medians["torch eager (cpu, fp32)"]
        for variant, seconds in medians.items():
            print(
                f"  {variant:42s} {seconds * 1e3:9.1f} ms {1 / seconds:8.1f} fps  x{base / seconds:5.2f} vs eager"
            )
        results.append((title, medians))
    return results


#: What the listener subscribes to in each node run: a navigation stack's outputs, then RViz's too.
NODE_RUNS = {"mask + confidence": ["--no-overlay"], "mask + confidence + overlay": []}


def bench_node(args) -> dict[str, dict]:
    """segment_node on the synthetic camera, `args.repeats` times per NODE_RUNS entry (the
    entries taking turns, so both see the same background load); the median of each figure.

    The listener only times what arrives: on a small CPU a consumer's own work on each mask runs
    on the cores the node needs and shows up in the node's figures (ssma-demo, which scores every
    mask, shows how much).
    """
    from ssma_ros import demo

    figures: dict[str, list[dict]] = {label: [] for label in NODE_RUNS}
    for repeat in range(args.repeats):
        for label, extra in NODE_RUNS.items():
            demo_args = demo.parse_args(
                [
                    "--rate",
                    str(args.rate),
                    "--size",
                    args.size,
                    "--duration",
                    str(args.duration),
                    "--bundle",
                    str(args.bundle),
                    "--backend",
                    "onnxruntime",
                    "--cpu-threads",
                    str(args.threads),
                    "--no-score",
                    *extra,
                    "--out",
                    str(Path(tempfile.mkdtemp(prefix="ssma-bench-node-"))),
                ]
            )
            figures[label].append(node_figures(demo.run(demo_args)))
            print(
                f"  run {repeat + 1}/{args.repeats} ({label}): p95 {figures[label][-1]['latency_p95_ms']:.0f} ms, "
                f"overhead {100 * figures[label][-1]['overhead_share']:.0f} %"
            )
    runs = {label: combine(runs) for label, runs in figures.items()}
    for label, combined in runs.items():
        print(
            f"\nsegment_node end to end, onnxruntime on the CPU, listening to {label} "
            f"(median of {args.repeats} runs):"
        )
        for key, value in combined.items():
            print(
                f"  {key:30s} {value:.3f}" if isinstance(value, float) else f"  {key:30s} {value}"
            )
    return runs


def node_figures(summary: dict) -> dict:
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
    """Figures of repeated runs: the median of each number (text from the first run), and the
    range of the two that carry targets, as `<name>_range` (min, max).
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
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `{command}` (written by it; medians of interleaved runs after warm-up, batch 1).",
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
            f"{first['camera']} synthetic RGB-D camera over Fast DDS, camera, node and a listener that only "
            "times what arrives in separate "
            f"processes as on a robot, Fast DDS profile `{Path(first['dds_profile']).name}`. Each figure is "
            f"the median of {first['repeats']} runs per set of subscribed outputs, the sets taking turns; "
            "brackets give the range over the runs. The CPU-time figures count the whole backend call only "
            "with `--threads 1` (other threads of its pool are not the workers').",
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
                    f"{100 * f['overhead_cpu_share']:.1f} % ({_range(f, 'overhead_cpu_share', 100)}; "
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ssma-bench", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("model", "node", "all"))
    parser.add_argument(
        "--bundle",
        type=Path,
        default=DEFAULT_BUNDLE,
        help="bundle for the pruned model and the node",
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every backend")
    parser.add_argument(
        "--rate", type=float, default=30.0, help="node benchmark: camera rate (Hz)"
    )
    parser.add_argument("--size", default="480x640", help="node benchmark: camera HxW")
    parser.add_argument(
        "--duration", type=float, default=15.0, help="node benchmark: seconds per run"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="node benchmark: runs per set of outputs"
    )
    parser.add_argument(
        "--write", type=Path, default=None, help="also write the tables to this markdown file"
    )
    args = parser.parse_args(argv)
    models = bench_models(args) if args.what in ("model", "all") else []
    node = bench_node(args) if args.what in ("node", "all") else None
    if args.write:
        write_markdown(
            args.write,
            models,
            node,
            "ssma-bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        )
        print(f"\nwritten to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
