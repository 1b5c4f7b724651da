"""The two-context test of whether a model reads its context, checked on pipelines whose
behaviour is known: one that learns the colour map from its examples, one that ignores them.
(The shipped model is checked with it after its retraining on the task universe.)"""

from __future__ import annotations

import attrs
import pytest
import torch

import registry
from lavin_core.errors import LavinError
from lavin_core.evaluation.context_reading import context_reading, twin_cases


@attrs.frozen
class _Output:
    samples: list


class ColourFitPipeline:
    """Reads its context: fits an affine colour map from the example pairs, applies it to the query."""

    def __call__(self, contexts, num_samples=1, **_):
        out = []
        for context in contexts:
            inputs = torch.cat([p.input.reshape(3, -1) for p in context.pairs], dim=1).T  # (N, 3)
            targets = torch.cat([p.target.reshape(3, -1) for p in context.pairs], dim=1).T
            design = torch.cat([inputs, torch.ones(len(inputs), 1)], dim=1)
            weights = torch.linalg.lstsq(design, targets).solution  # (4, 3)
            query = context.query.reshape(3, -1).T
            mapped = torch.cat([query, torch.ones(len(query), 1)], dim=1) @ weights
            out.append(mapped.T.reshape(context.query.shape).clamp(-1, 1))
        return _Output(samples=[[p] * num_samples for p in out])


class CopyQueryPipeline:
    """Ignores its context: answers with the query."""

    def __call__(self, contexts, num_samples=1, **_):
        return _Output(samples=[[c.query.clone()] * num_samples for c in contexts])


@pytest.mark.parametrize("name", ["map_colour_mix", "map_channel_permute"])
def test_a_context_reader_passes_and_a_context_ignorer_fails(name):
    task = registry.get_task(name, size=32)
    reading = context_reading(ColourFitPipeline(), task, trials=4, num_pairs=2, seed=3, progress=False)
    ignoring = context_reading(CopyQueryPipeline(), task, trials=4, num_pairs=2, seed=3, progress=False)
    assert reading.trials == 4 and reading.both_closer == 1.0 and reading.closer == 1.0
    assert ignoring.both_closer == 0.0  # one answer for two contexts cannot be closer to both truths
    assert reading.as_dict()["both_closer"] == 1.0


def test_twin_cases_share_inputs_and_differ_in_targets():
    a, b = twin_cases(registry.get_task("semantic_segmentation", size=32, style="drawn"), 0, num_pairs=3, seed=1)
    assert torch.equal(a.query, b.query) and not torch.equal(a.target, b.target)
    assert all(torch.equal(p.input, q.input) for p, q in zip(a.pairs, b.pairs))
    assert a.instance.palette != b.instance.palette


def test_a_fixed_task_is_refused():
    with pytest.raises(LavinError, match="does not draw its instance"):
        twin_cases(registry.get_task("depth", size=32), 0, num_pairs=1, seed=0)
