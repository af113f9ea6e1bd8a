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
