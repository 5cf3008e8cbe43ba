"""Test-wide settings. ROS traffic stays on this machine, in a DDS domain of this run's own."""

import os
import random

# Before anything imports rclpy: each test run gets its own domain so parallel runs cannot
# cross-talk.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(10, 99)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
if os.environ.get("ROS_DISTRO") == "humble":  # Humble predates ROS_AUTOMATIC_DISCOVERY_RANGE
    os.environ["ROS_LOCALHOST_ONLY"] = "1"

import pytest  # noqa: E402


@pytest.fixture
def ros_context():
    """A fresh rclpy context for one test, shut down afterwards."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Training tests in one torch thread.

    The test machine's cores are shared, and one thread per process is faster than
    oversubscribing them.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A lite SSMA RGB-D bundle (untrained weights) at 64x80, exported the way ssma-export does it.

    Untrained on purpose: tests of plumbing must not depend on what a model learned; tests of
    accuracy use the shipped default bundle.
    """
    import torch

    from ssma_ros.data.preprocess import Preprocess
    from ssma_ros.data.synthetic import CLASSES, PALETTE
    from ssma_ros.export.bundle_cli import export_bundle
    from ssma_ros.model import build_model
    from ssma_ros.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("bundle")
    model = build_model("ssma", "lite", len(CLASSES)).eval()
    checkpoint = save_checkpoint(
        folder / "tiny.pt",
        model,
        classes=list(CLASSES),
        palette=PALETTE.tolist(),
        void_index=0,
        preprocess=Preprocess(64, 80).to_dict(),
    )
    bundle, _ = export_bundle(checkpoint, folder / "tiny_bundle", name="tiny")
    return bundle


@pytest.fixture(scope="session")
def thermal_bundle(tmp_path_factory):
    """Export a lite SSMA RGB + infrared bundle (untrained) at 64x80, for mono16 thermal."""
    import torch

    from ssma_ros.data.preprocess import AuxSpec, Preprocess
    from ssma_ros.data.synthetic import CLASSES, PALETTE
    from ssma_ros.export.bundle_cli import export_bundle
    from ssma_ros.model import build_model
    from ssma_ros.model.checkpoint import save_checkpoint

    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("thermal")
    preprocess = Preprocess(64, 80, aux_spec=AuxSpec(modality="infrared", encoding="intensity"))
    checkpoint = save_checkpoint(
        folder / "thermal.pt",
        build_model("ssma", "lite", len(CLASSES)).eval(),
        classes=list(CLASSES),
        palette=PALETTE.tolist(),
        void_index=0,
        preprocess=preprocess.to_dict(),
    )
    bundle, _ = export_bundle(checkpoint, folder / "bundle", name="thermal")
    return bundle
