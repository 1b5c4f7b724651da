"""No dtype or device copies on the float32 CPU path: the J-DiT forward, a training step, the ST-VAE
and a sampling run issue no ``aten._to_copy`` (the op behind every ``.to(dtype)``, ``.float()``,
``.to(device)`` that changes something).

The bound is 0, counted with a ``TorchDispatchMode``, which sees every tensor op Python or the
autograd engine issues (forward, backward, optimizer). It does not see the 0-dim scalar wraps
inside ATen (``x + 1e-6`` turns the Python float into a tensor): ``torch.profiler`` lists those as
``aten::_to_copy`` too (about 1,000 in an eager lavin-tiny training step, 2% of its time); they are
not casts of data and vanish under ``torch.compile``."""

from __future__ import annotations

import collections

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lavin_core.jdit import JDiT, get_preset
from lavin_core.samplers import EulerSampler, null_context
from lavin_core.stvae import STVAE
from lavin_core.train.dit_stage import DiTObjective
from lavin_core.train.optim import make_optimizer


class OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _count(fn) -> collections.Counter[str]:
    fn()  # RoPE tables and other first-call caches are built here, outside the count
    with OpCounter() as counter:
        fn()
    return counter.counts


def _batch(batch: int = 3):
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(batch, 16, 1, 4, 4, generator=gen)
    cond = torch.randn(batch, 16, 5, 4, 4, generator=gen)
    return target, cond, torch.rand(batch, generator=gen)


def test_jdit_forward_and_training_step_make_no_casts():
    torch.manual_seed(0)
    model = JDiT(get_preset("lavin-tiny", depth=2))
    target, cond, t = _batch()
    with torch.no_grad():
        assert _count(lambda: model(target, t, cond))["aten._to_copy"] == 0

    objective = DiTObjective(model, autocast_dtype=None)
    optimizer = make_optimizer(list(model.parameters()), lr=1e-4)
    noise, drop = torch.randn_like(target), torch.tensor([False, True, False])

    def step():
        loss = objective(target, cond, null_context(cond[:, :, -1:]), t, noise, drop).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    counts = _count(step)
    assert counts["aten._to_copy"] == 0, counts
    assert counts["aten.mm"] > 0  # the counter saw the step (forward and backward)


def test_stvae_and_sampling_make_no_casts():
    torch.manual_seed(0)
    vae = STVAE.from_preset("lavin-tiny").eval()
    model = JDiT(get_preset("lavin-tiny", depth=1)).eval()
    pixels = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    _, cond, _ = _batch(1)
    noise = torch.randn(1, 16, 1, 4, 4)
    with torch.no_grad():
        assert _count(lambda: vae.decode(vae.encode(pixels)))["aten._to_copy"] == 0
        sample = lambda: EulerSampler(schedule="uniform").sample(  # noqa: E731
            model, noise, cond, null_cond=null_context(cond[:, :, -1:]), guidance_scale=2.0, num_steps=2)
        assert _count(sample)["aten._to_copy"] == 0
