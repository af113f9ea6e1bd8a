"""Shared fixtures: small, offline, deterministic."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may touch the network


@pytest.fixture(scope="session")
def organism():
    """The shipped organism backbone on the CPU."""
    from zsnb import load_backbone

    return load_backbone("organism")


@pytest.fixture(scope="session")
def organism_random():
    """The organism architecture with seeded random weights (the untrained control)."""
    from zsnb import load_backbone

    return load_backbone("organism", weights="random")


@pytest.fixture(scope="session")
def scene_image() -> torch.Tensor:
    """One evaluation scene as a (3, 32, 32) tensor in [0, 1]."""
    from zsnb import world

    return torch.from_numpy(world.scene(world.EVAL_SEEDS[0]).image).permute(2, 0, 1)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for modules of tiny tensors: on a shared 2-core CPU, OpenMP threads spin-wait for
    each other and small ops slow down up to 100x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
