"""The plugin kit: one public path re-exporting the internal objects, and contract checks that pass
on every built-in task and fail on a broken one."""

from __future__ import annotations

import pytest
import torch

import registry
from lavin_core.context import Example, ExamplePair
from lavin_plugins import kit
from lavin_plugins.kit.testing import check_round_trip, check_task
from lavin_plugins.tasks import HELD_OUT, TRAINING_UNIVERSE


def test_kit_reexports_the_internal_objects_not_copies():
    from lavin_plugins import metrics
    from lavin_plugins.tasks import base, codes

    assert kit.GeneratedTask is base.GeneratedTask and kit.psnr is metrics.psnr
    assert kit.encode_scalar is codes.encode_scalar and kit.Task is __import__("lavin_core").Task
    assert all(hasattr(kit, name) for name in kit.__all__)


# pose reads keypoints back as disc centroids (within 2 px); depth decodes a colour path (within 1e-3)
TOLERANCE = {"pose": 2.0, "depth": 1e-3, "unseen_depth": 1e-3}


@pytest.mark.slow
@pytest.mark.parametrize("name", [*TRAINING_UNIVERSE, *HELD_OUT])
def test_every_task_of_the_universe_keeps_the_contract(name):
    task = registry.get_task(name, size=32, **TRAINING_UNIVERSE.get(name, {}))
    check_task(task, count=2, round_trip_atol=TOLERANCE.get(name, 1e-4), instances=2)


class LossyTask(kit.Task):
    """Its read() forgets the sign: the contract check must catch it."""

    name, description, metrics, higher_is_better = "lossy", "broken", ("err",), {"err": False}

    def examples(self, count, *, seed=0):
        g = torch.Generator().manual_seed(seed)
        for i in range(count):
            x = torch.rand(3, 1, 16, 16, generator=g) * 2 - 1
            yield Example(pair=ExamplePair(input=x, target=x), answer=x, id=str(i))

    def render(self, answer):
        return answer

    def read(self, pixels):
        return pixels.abs()

    def score(self, predicted, truth):
        return {"err": float((predicted - truth).abs().mean())}


def test_a_broken_read_fails_the_contract():
    with pytest.raises(AssertionError, match="read\\(render\\(answer\\)\\)"):
        check_round_trip(LossyTask())
