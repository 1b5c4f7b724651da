"""The plugin registry: discovery, in-process registration, duplicates, isolation, errors."""

import textwrap
import types

import pytest
import torch

import registry
from lavin_core import Example, ExamplePair, PromptSampler, Task, UnknownNameError
from lavin_core.cli import main as lavin_main
from registry import DuplicateNameError, PluginError, Registry, hookimpl


def make_task(task_name: str):
    class Toy(Task):
        name = task_name
        description = f"toy task {task_name}"
        metrics = ("l1",)
        higher_is_better = {"l1": False}

        def __init__(self, size: int = 16):
            self.size = size

        def examples(self, count, *, seed=0):
            generator = torch.Generator().manual_seed(seed)
            for index in range(count):
                image = torch.rand(3, 1, self.size, self.size, generator=generator) * 2 - 1
                yield Example(pair=ExamplePair(input=image, target=image.flip(-1)), answer=image.flip(-1), id=str(index))

        def render(self, answer):
            return answer

        def read(self, pixels):
            return pixels

        def score(self, predicted, truth):
            return {"l1": (predicted - truth).abs().mean().item()}

    return Toy


class FirstSampler(PromptSampler):
    name = "first"

    def select(self, pool, query, num_pairs, *, generator=None):
        return list(range(num_pairs))


def plugin(*task_names: str, samplers=()):
    """A plugin object (a namespace with hookimpls) registering toy tasks and samplers."""

    @hookimpl
    def lavin_register_tasks(register):
        for task_name in task_names:
            register(make_task(task_name))

    @hookimpl
    def lavin_register_prompt_samplers(register):
        for sampler in samplers:
            register(sampler)

    return types.SimpleNamespace(lavin_register_tasks=lavin_register_tasks,
                                 lavin_register_prompt_samplers=lavin_register_prompt_samplers)


def test_in_process_registration_builds_tasks_with_options():
    reg = Registry(entry_points=False)
    reg.register_plugin(plugin("toy", samplers=[FirstSampler]), name="mine")
    assert reg.list_tasks() == ["toy"] and reg.list_prompt_samplers() == ["first"]
    task = reg.get_task("toy", size=32)
    assert isinstance(task, Task) and task.size == 32
    assert isinstance(reg.get_prompt_sampler("first"), FirstSampler)
    assert reg.provided_by("mine") == {"task": ["toy"], "prompt sampler": ["first"]}
    reg.unregister_plugin("mine")
    assert reg.list_tasks() == []


def test_unknown_name_lists_close_matches_and_everything_available():
    reg = Registry(entry_points=False)
    reg.register_plugin(plugin("depth", "edges", "pose"), name="mine")
    with pytest.raises(UnknownNameError) as info:
        reg.get_task("dept")
    message = str(info.value)
    assert "unknown task 'dept'" in message and "did you mean 'depth'" in message
    assert "available: depth, edges, pose" in message
    assert isinstance(info.value, LookupError)


def test_duplicate_name_names_both_plugins_and_leaves_other_names_usable():
    reg = Registry(entry_points=False)
    reg.register_plugin(plugin("depth", "pose"), name="alpha")
    reg.register_plugin(plugin("depth"), name="beta")
    with pytest.raises(DuplicateNameError) as info:
        reg.get_task("depth")
    assert "'alpha'" in str(info.value) and "'beta'" in str(info.value)
    assert "LAVIN_DISABLE_PLUGINS" in str(info.value)
    assert reg.get_task("pose").name == "pose"
    assert reg.list_tasks() == ["depth", "pose"]
    assert reg.conflicts()["task"] == {"depth": ["alpha", "beta"]} or reg.conflicts()["task"] == {"depth": ["beta", "alpha"]}
    with pytest.raises(DuplicateNameError, match="already registered"):
        reg.register_plugin(plugin("x"), name="alpha")


def test_hook_that_raises_is_isolated_and_reported():
    @hookimpl
    def lavin_register_tasks(register):
        register(make_task("half"))
        raise RuntimeError("dataset missing")

    reg = Registry(entry_points=False)
    reg.register_plugin(types.SimpleNamespace(lavin_register_tasks=lavin_register_tasks), name="bad")
    reg.register_plugin(plugin("good"), name="fine")
    assert reg.list_tasks() == ["good"]  # nothing of the failing hook is kept
    record = {r.name: r for r in reg.plugins()}["bad"]
    assert record.status == "error" and "RuntimeError: dataset missing" in record.error


def test_factory_that_builds_the_wrong_thing_is_a_clear_error():
    @hookimpl
    def lavin_register_tasks(register):
        register(lambda: "not a task", name="odd")

    reg = Registry(entry_points=False)
    reg.register_plugin(types.SimpleNamespace(lavin_register_tasks=lavin_register_tasks), name="p")
    with pytest.raises(PluginError, match="built a str, not a Task"):
        reg.get_task("odd")
    reg.register_plugin(plugin("toy"), name="q")
    with pytest.raises(PluginError, match="rejected options"):
        reg.get_task("toy", colour="red")


@pytest.fixture
def installed_plugins(tmp_path, monkeypatch):
    """Three fake installed distributions on sys.path: a working plugin, one that fails to
    import, and one that clashes with the working one."""
    (tmp_path / "fake_good.py").write_text(textwrap.dedent("""
        from registry import hookimpl
        from tests.test_registry import make_task

        @hookimpl
        def lavin_register_tasks(register):
            register(make_task("fake-depth"))
            register(make_task("shared"))
    """))
    (tmp_path / "fake_broken.py").write_text("raise ImportError('needs the missing package frob')\n")
    (tmp_path / "fake_clash.py").write_text(textwrap.dedent("""
        from registry import hookimpl
        from tests.test_registry import make_task

        @hookimpl
        def lavin_register_tasks(register):
            register(make_task("shared"))
    """))
    for dist, entry_name, module in [("fake-good", "good", "fake_good"), ("fake-broken", "broken", "fake_broken"),
                                     ("fake-clash", "clash", "fake_clash")]:
        info = tmp_path / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[lavin]\n{entry_name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_entry_point_discovery_isolates_a_plugin_that_fails_to_import(installed_plugins):
    reg = Registry()
    records = {r.name: r for r in reg.plugins()}
    assert records["good"].status == "ok" and records["good"].source == "fake-good 1.0"
    assert records["broken"].status == "error" and "needs the missing package frob" in records["broken"].error
    assert records["builtin"].source.startswith("lavin-dit")  # the built-in plugin comes the same way
    assert reg.get_task("fake-depth").name == "fake-depth"
    with pytest.raises(DuplicateNameError, match="'good' and 'clash'|'clash' and 'good'"):
        reg.get_task("shared")


def test_disable_env_var_resolves_a_clash(installed_plugins, monkeypatch):
    monkeypatch.setenv("LAVIN_DISABLE_PLUGINS", "clash, broken")
    reg = Registry()
    records = {r.name: r for r in reg.plugins()}
    assert records["clash"].status == "disabled" and records["broken"].status == "disabled"
    assert reg.task_entry("shared").plugin == "good"


def test_cli_plugins_shows_the_broken_plugin_and_the_conflict(installed_plugins, monkeypatch, capsys):
    monkeypatch.setattr(registry, "_default", None)
    assert lavin_main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "broken" in out and "error" in out and "needs the missing package frob" in out
    assert "conflict: task 'shared'" in out
    assert lavin_main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "fake-depth" in out and "CONFLICT" in out
    monkeypatch.setattr(registry, "_default", None)


def test_module_level_functions_use_one_shared_registry(monkeypatch):
    monkeypatch.setattr(registry, "_default", Registry(entry_points=False))
    registry.register_plugin(plugin("notebook-task", samplers=[FirstSampler]), name="nb")
    assert "notebook-task" in registry.list_tasks()
    assert registry.get_task("notebook-task").name == "notebook-task"
    assert registry.list_prompt_samplers() == ["first"]
    registry.unregister_plugin("nb")
    with pytest.raises(UnknownNameError, match="unknown plugin"):
        registry.unregister_plugin("nb")
