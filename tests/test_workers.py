"""Sampling and decoding chunks on two CPU threads: the same answers as one thread, errors kept."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

import lavin_core.pipeline.workers as workers
from lavin_core.pipeline import InContextPipeline
from lavin_core.pipeline.workers import cpu_workers, is_compiled, run_all
from lavin_core.samplers import EulerSampler
from lavin_core.samplers.options import SamplingOptions
from tests.test_adaptation import TinyDenoiser, make_context
from tests.test_pipeline import UnshuffleEncoder


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_run_all_calls_every_item_once_on_several_threads():
    seen, names = [], set()
    lock = threading.Lock()

    def record(item):
        with lock:
            seen.append(item)
            names.add(threading.current_thread().name)

    run_all(record, list(range(20)), workers=2)
    assert sorted(seen) == list(range(20))
    run_all(record, [], workers=2)
    seen.clear()
    run_all(record, [3, 1, 2], workers=1)  # one worker: in order, on the caller's thread
    assert seen == [3, 1, 2]


def test_run_all_raises_the_first_error_and_drops_what_has_not_started():
    started = []
    gate = threading.Event()

    def work(item):
        started.append(item)
        if item == 0:
            raise ValueError("chunk 0 failed")
        gate.wait(5)

    with pytest.raises(ValueError, match="chunk 0 failed"):
        threading.Timer(0.2, gate.set).start()
        run_all(work, list(range(50)), workers=2)
    assert len(started) < 50


def test_cpu_workers_only_where_threads_help(two_threads):
    model = nn.Linear(2, 2)
    assert cpu_workers(model, torch.device("cpu")) == workers.CPU_SAMPLING_WORKERS
    assert cpu_workers(model, torch.device("cuda")) == 1  # a GPU runs one chunk at a time
    assert cpu_workers(model, torch.device("cpu"), ordered=True) == 1  # a step callback sees steps in order
    torch.set_num_threads(1)
    assert cpu_workers(model, torch.device("cpu")) == 1
    torch.set_num_threads(2)
    compiled = nn.Sequential(nn.Linear(2, 2))
    compiled[0].compile()  # nothing is traced until it is called
    assert is_compiled(compiled) and cpu_workers(compiled, torch.device("cpu")) == 1
    assert not is_compiled(model)


def test_two_sampling_threads_give_the_answers_of_one(two_threads, monkeypatch):
    pipe = InContextPipeline(UnshuffleEncoder(), TinyDenoiser(), EulerSampler(schedule="uniform"),
                             defaults=SamplingOptions(num_steps=3))
    # two shapes (2 and 3 pairs) and one row per chunk: several chunks on each thread
    contexts = [make_context(2, seed=0), make_context(3, seed=10), make_context(2, seed=20)]
    calls = []

    def options():
        return dict(seed=4, num_samples=3, batch_size=1, context_copy=True, guidance_scale=2.0, progress=False)

    import lavin_core.pipeline.pipeline as pipeline_module

    asked = []

    def spy(fn, items, *, workers):
        asked.append((len(items), workers))
        return run_all(fn, items, workers=workers)

    monkeypatch.setattr(pipeline_module, "run_all", spy)
    threaded = pipe(contexts, **options())
    assert asked == [(9, 2), (9, 2)]  # 9 one-row chunks sampled, then decoded, on two threads
    monkeypatch.setattr(workers, "CPU_SAMPLING_WORKERS", 1)
    alone = pipe(contexts, **options())
    for a, b in zip(threaded.latents, alone.latents):
        assert torch.equal(a, b)
    for a, b in zip(threaded.predictions, alone.predictions):
        assert torch.equal(a, b)
    # a step callback sees every step of one chunk before the next chunk's
    monkeypatch.setattr(workers, "CPU_SAMPLING_WORKERS", 2)
    pipe(contexts, **options(), callback=lambda step, t, z: calls.append(step))
    assert calls == list(range(3)) * 9
