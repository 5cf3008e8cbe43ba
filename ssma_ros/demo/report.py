"""The demo's outputs: the printed summary and the picture strip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ssma_ros.demo.camera import AUX_DROPPED, phases

#: The thermal picture's fixed colour scale in degrees Celsius: one colour is one temperature in
#: every frame and run (a per-frame stretch would recolour the scene as it changes).
THERMAL_RANGE_C = (-20.0, 50.0)


def depth_jet(depth: np.ndarray) -> np.ndarray:
    """Colour a depth image in metres (0..30 m, turbo); invalid depth is black."""
    import matplotlib

    rgba = matplotlib.colormaps["turbo"](np.clip(np.nan_to_num(depth, nan=0.0) / 30.0, 0, 1))
    rgb = (rgba[..., :3] * 255).astype(np.uint8)
    rgb[~np.isfinite(depth)] = 0
    return rgb


def thermal_inferno(centikelvin: np.ndarray) -> np.ndarray:
    """Colour a radiometric thermal image (uint16 centikelvin) over THERMAL_RANGE_C (inferno)."""
    import matplotlib

    low, high = THERMAL_RANGE_C
    celsius = centikelvin.astype(np.float32) / 100.0 - 273.15
    rgba = matplotlib.colormaps["inferno"](np.clip((celsius - low) / (high - low), 0, 1))
    return (rgba[..., :3] * 255).astype(np.uint8)


def aux_picture(sample: Any, aux: str) -> np.ndarray:
    """Colour a generator sample's `aux` image ("depth" or "thermal") for the picture."""
    return thermal_inferno(sample.thermal) if aux == "thermal" else depth_jet(sample.depth)


def save_strip(kept: list[dict], path: Path, aux: str) -> None:
    """Save one row per kept frame: RGB, the `aux` image, the node's overlay and confidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ("RGB", "aux", "overlay", "confidence")
    fig, axes = plt.subplots(len(kept), 4, figsize=(13, 2.6 * len(kept)), squeeze=False)
    for row, frame in zip(axes, kept):
        for ax, name in zip(row, columns):
            image = frame[name]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
        row[0].set_ylabel(f"{frame['phase']}\nt={frame['t']:.1f} s", fontsize=9)
        if frame["phase"] == phases(aux)[AUX_DROPPED]:
            row[1].set_xlabel(f"(not sent: {aux} is off)", fontsize=8)
    low, high = THERMAL_RANGE_C
    titles = {"aux": f"thermal ({low:g}..{high:g} °C)" if aux == "thermal" else aux}
    for ax, name in zip(axes[0], columns):
        ax.set_title(titles.get(name, name))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def print_summary(s: dict) -> None:
    """Print a run's summary for a person."""
    node = s["node"]
    print("\n==== ssma-demo summary ====")
    print(f"camera        {s['camera']}, condition {s['condition']}")
    print(f"backend       {node['backend']} on {node['device']} [{node['precision']}]")
    print(
        f"frames        {s['frames_sent']} sent, {s['masks_received']} masks received "
        f"({s['output_rate_hz']:.1f} Hz out); node dropped {node['dropped_stale']} stale pairs"
    )
    print(
        f"latency       stamp-to-mask p50 {s['latency_p50_ms']:.0f} ms, "
        f"p95 {s['latency_p95_ms']:.0f} ms (node p50: inputs {node['input_p50_ms']} ms, "
        f"inference {node['inference_p50_ms']} ms, outputs {node['output_p50_ms']} ms)"
    )
    print(
        f"node CPU      {s['node_cpu_ms_per_frame']:.1f} ms per frame served, all its threads "
        f"(workers p50: inputs {node['input_cpu_p50_ms']} ms, inference "
        f"{node['inference_cpu_p50_ms']} ms, outputs {node['output_cpu_p50_ms']} ms)"
    )
    if s["frames_by_phase"]:
        print(f"mIoU          {s['miou']:.1f} % against the generator's ground truth")
    if len(s["miou_by_phase"]) > 1 or "rgb_only_frames_during_drop" in s:
        names = phases(s["aux_stream"])
        width = max(14, 1 + max(map(len, names)))  # 14: the depth run's layout
        for phase in names:
            if phase in s["miou_by_phase"]:
                print(
                    f"  {phase:{width}s} mIoU {s['miou_by_phase'][phase]:.1f} % over "
                    f"{s['frames_by_phase'][phase]} frames"
                )
        print(
            f"fallback      {s.get('rgb_only_frames_during_drop', 0)} frames served from RGB "
            f"alone while {s['aux_stream']} was off; aux state at the end: {node['aux']}"
        )
    if "picture" in s:
        print(f"picture       {s['picture']}")
    details = Path(s.get("picture", "demo_out/x")).parent / "summary.json"
    print(f"details       {details}, node log beside it")
