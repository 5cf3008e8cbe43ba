"""ssma-bench's arithmetic and tables (the measurements themselves are benchmarks, not tests)."""

from __future__ import annotations

import pytest

from ssma_ros import bench


def summary(inputs: float, inference: float, output: float, p95: float = 100.0) -> dict:
    return {
        "camera": "640x480 at 30 Hz",
        "rate_hz": 30.0,
        "dds_profile": "/x/config/fastdds_large_images.xml",
        "output_rate_hz": 20.0,
        "latency_p50_ms": 80.0,
        "latency_p95_ms": p95,
        "node_cpu_ms_per_frame": 1.2 * (inputs + inference + output),
        "node": {
            "input_p50_ms": str(inputs),
            "inference_p50_ms": str(inference),
            "output_p50_ms": str(output),
            "process_p50_ms": str(inputs + inference + output),
            "dropped_stale": "7",
            "frames_out": "400",
            # the workers waited for a core during half their outputs stage
            "input_cpu_p50_ms": str(inputs),
            "inference_cpu_p50_ms": str(inference),
            "output_cpu_p50_ms": str(output / 2),
            "process_cpu_p50_ms": str(inputs + inference + output / 2),
        },
    }


def test_node_figures_separate_work_share_and_critical_path():
    f = bench.node_figures(summary(inputs=5.0, inference=30.0, output=10.0))
    assert f["overhead_share"] == pytest.approx(15 / 45)  # all work outside the backend call
    assert f["critical_path_overhead_share"] == pytest.approx(
        5 / 35
    )  # outputs overlap the next inference
    assert f["p95_target_ms"] == pytest.approx(65.0)
    assert f["process_overhead_share"] == pytest.approx(
        1 - 30 / 54
    )  # the executor and DDS threads too
    assert f["overhead_cpu_share"] == pytest.approx(
        10 / 40
    )  # CPU time: without the waits for a core
    assert f["frame_period_share"] == pytest.approx(
        15 / (1000 / 30)
    )  # against the 33.3 ms between frames
    # An output stage longer than the inference stage is the critical path.
    slow = bench.node_figures(summary(inputs=2.0, inference=10.0, output=20.0))
    assert slow["critical_path_overhead_share"] == pytest.approx(0.5)


def test_repeated_runs_combine_to_medians_with_ranges():
    runs = [
        bench.node_figures(summary(5.0, 30.0, out, p95))
        for out, p95 in ((10.0, 90.0), (4.0, 200.0), (7.0, 70.0))
    ]
    combined = bench.combine(runs)
    assert combined["output_stage_p50_ms"] == 7.0 and combined["latency_p95_ms"] == 90.0
    assert combined["latency_p95_ms_range"] == (70.0, 200.0)
    assert combined["overhead_share_range"] == (pytest.approx(9 / 39), pytest.approx(15 / 45))
    assert combined["repeats"] == 3 and combined["camera"] == "640x480 at 30 Hz"


def test_markdown_has_a_column_per_node_run(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "machine", lambda: "test CPU; GPU: none")
    runs = {
        label: bench.combine([bench.node_figures(summary(5.0, 30.0, 10.0 + i))])
        for i, label in enumerate(bench.NODE_RUNS)
    }
    path = tmp_path / "B.md"
    bench.write_markdown(path, [], runs, "ssma-bench node")
    text = path.read_text()
    assert all(f"listening to {label}" in text for label in bench.NODE_RUNS)
    assert (
        "| node overhead: work outside the backend call / work per frame "
        "| 33.3 % (33.3-33.3) | 34.8 % (34.8-34.8) | <= 15 % |"
    ) in text
    assert "median of 1 runs" in text
    assert (
        "| the same work outside the backend call / camera frame period | 45.0 % (of 33.3 ms) |"
        in text
    )
    assert (
        "| the same in CPU time of the workers (inputs / outputs p50) "
        "| 25.0 % (25.0-25.0; 5.0 / 5.0 ms) |"
    ) in text
    assert "fastdds_large_images.xml" in text


def test_gpu_rows_run_copies_and_the_cpu_rows_still_run(monkeypatch):
    """GPU rows leave the CPU model where it is.

    Module.to moves in place: GPU rows that moved `model` would feed its CPU rows' CPU inputs
    to GPU weights. Here the "GPU" is the meta device (shapes only, no memory).
    """
    import torch

    monkeypatch.setattr(bench, "GPU", "meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    inputs = (torch.randn(1, 3, 8, 8),)
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32  # the rows turn TF32 off for the process
    try:
        cudnn.allow_tf32 = matmul.allow_tf32 = True
        fns = bench.variants(model, inputs, None, threads=1)
        assert list(fns) == [
            "torch eager (cpu, fp32)",
            "torch frozen+channels_last (cpu, fp32)",
            "torch (cuda, fp32)",
            "torch (cuda, fp16)",
        ]
        for fn in fns.values():
            fn()
        # "fp32" rows on a GPU are fp32: cuDNN's TF32 (on by default) is off
        assert not cudnn.allow_tf32 and not matmul.allow_tf32
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_data_bench_times_every_condition_in_wall_and_cpu_time(capsys):
    from ssma_ros.data import synthetic

    tables = bench.bench_data((48, 64), runs=2, warmup=1)
    assert "default allocator" in tables
    for rows in tables.values():
        assert list(rows) == list(synthetic.CONDITIONS)
        assert all(wall > 0 and cpu > 0 for wall, cpu in rows.values())
    assert "synthetic scenes 48x64, median of 2 frames per condition" in capsys.readouterr().out
