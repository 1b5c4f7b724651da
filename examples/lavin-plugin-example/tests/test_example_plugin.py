"""Plugin authors: copy this file. It checks the plugin with LaVin's own registry."""

import pytest
import torch

import registry
from lavin_core import Task, TaskContext
from lavin_plugins.kit.testing import check_task


def test_installed_plugin_is_found_through_its_entry_point():
    reg = registry.Registry()  # reads the installed entry points, like `lavin tasks` does
    assert "invert" in reg.list_tasks()
    assert reg.task_entry("invert").plugin == "example"
    assert "stride" in reg.list_prompt_samplers()


def test_task_renders_reads_and_scores():
    import lavin_plugin_example

    reg = registry.Registry(entry_points=False)  # an empty registry: no other plugin interferes
    reg.register_plugin(lavin_plugin_example, name="example")
    task = reg.get_task("invert", size=32)
    assert isinstance(task, Task)
    examples = list(task.examples(3, seed=1))
    assert [e.id for e in examples] == [e.id for e in task.examples(3, seed=1)]
    truth = examples[0].answer
    assert torch.equal(task.read(task.render(truth)), truth)
    assert task.score(truth, truth)["psnr"] == 100.0
    assert task.score(-truth, truth)["psnr"] < 20.0

    sampler = reg.get_prompt_sampler("stride")
    pool = [e.pair for e in task.examples(8)]
    chosen = sampler.select(pool, examples[0].pair.input, 4)
    context = TaskContext(task="invert", pairs=[pool[i] for i in chosen], query=examples[0].pair.input)
    assert chosen == [0, 2, 4, 6] and context.num_pairs == 4


@pytest.mark.parametrize("options", [{}, {"style": "fixed"}, {"shapes": 1, "outline": True, "thickness": 2}])
def test_silhouette_keeps_the_kit_contract(options):
    import lavin_plugin_example

    reg = registry.Registry(entry_points=False)
    reg.register_plugin(lavin_plugin_example, name="example")
    check_task(reg.get_task("silhouette", size=32, **options))


def test_silhouette_draws_its_colours_per_context():
    from lavin_plugin_example.silhouette import SilhouetteTask

    task = SilhouetteTask(size=32)
    a, b = task.instance(1), task.instance(2)
    assert a.colors != b.colors and task.colors == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert task.instance(1).colors == a.colors  # deterministic in the seed
    with pytest.raises(ValueError, match="shapes"):
        SilhouetteTask(shapes=0)
