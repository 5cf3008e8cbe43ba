"""The measuring toolkit: interleaved timing; ONNX latency in sessions as the node makes them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ssma_ros.measure import interleaved_medians, onnx_latency_ms
from ssma_ros.runtime.onnxruntime_backend import CPU_EP, create_session


def test_variants_take_turns_and_warm_up_rounds_are_not_timed():
    calls = []
    medians = interleaved_medians(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=2, runs=3
    )
    assert calls == ["a", "b"] * 5  # one call of each per round, the rounds in turn
    assert set(medians) == {"a", "b"} and all(m >= 0 for m in medians.values())
    with pytest.raises(ValueError, match="runs must be >= 1"):
        interleaved_medians({"a": lambda: None}, warmup=0, runs=0)


def _relu_onnx(path, shape):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_onnx_latency_runs_each_file_in_a_session_with_the_nodes_options(tmp_path, monkeypatch):
    import ssma_ros.measure as measure

    made = []

    def recording(path, providers, threads):
        session = create_session(path, providers, threads)
        made.append(session)
        return session

    monkeypatch.setattr(measure, "create_session", recording)
    paths = {n: _relu_onnx(tmp_path / f"{n}.onnx", [1, 3, 4, s]) for n, s in (("a", 4), ("b", 8))}
    latency = onnx_latency_ms(paths, threads=1, runs=3, warmup=1)
    assert set(latency) == {"a", "b"} and all(0 < v < 1000 for v in latency.values())
    for session in made:  # what the node serves with: idle threads sleep, one thread here
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == 1
        assert session.get_providers() == [CPU_EP]
    out = made[1].run(None, {"x": -np.ones((1, 3, 4, 8), np.float32)})[0]
    assert out.shape == (1, 3, 4, 8) and not out.any()
