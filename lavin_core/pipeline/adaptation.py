"""Test-time adaptation: the J-DiT fine-tuned on a context's own example pairs before it answers.

In-context learning reads the task from the pairs in one forward pass. Where a small J-DiT reads
them too loosely (a task family it never saw), the pairs can also teach it by gradient: each
pair in turn is held out as a query whose target is known, the others are its context, and a
few optimizer steps of the training loss (conditional flow matching, the official MSE + 0.1 L1
on the velocity) fit the weights to this one task. Then the real query is answered with the
adapted weights, and the weights are put back. This is the test-time training of Sun et al.
(2020) in the leave-one-out form that Akyürek et al. (2024) used for few-shot abstract reasoning.

Everything happens on latents the pipeline has already encoded: ``cond`` is
``[in_1, tgt_1, ..., in_N, tgt_N, query]`` along time, every input has the query's frames and
every target the answer's (``TaskContext`` guarantees one shape each), so the leave-one-out
contexts are slices of it. It needs at least two pairs.

    >>> with adapted(pipe.denoiser, cond, query_frames=1, target_frames=1, steps=80, lr=1e-3, generator=g):
    ...     latents = sampler.sample(pipe.denoiser, noise, cond[None], ...)
    # the denoiser's weights are exactly the loaded ones again here, also after an exception
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from lavin_core.flow import FlowMatchingLoss, LogitNormalTimeSampler, interpolate, target_velocity

#: Leave-one-out contexts per optimizer step.
BATCH_SIZE = 8

#: What to adapt with for a task the model never saw: lavin-tiny-icl's held-out split (chosen on the
#: validation seed 7, measured on seed 2026: 7 of 12 wins against 4 without; README, "Held out with
#: test-time adaptation"). With 2 pairs each step reads one pair and answers the other, and it hurt
#: as often as it helped; from 4 pairs it paid.
UNSEEN_TASK_STEPS = 80
UNSEEN_TASK_MIN_PAIRS = 4


def unseen_task_note(task: str | None, trained_tasks: Sequence[str] | None, adapt_steps: int | None) -> str | None:
    """The advice for answering ``task`` with a model trained on ``trained_tasks`` (None or empty: not
    known) without adaptation (``adapt_steps`` 0 or None), when the task is not one of them; else None."""
    if task is None or not trained_tasks or adapt_steps or task in trained_tasks:
        return None
    return (f"the model was not trained on task {task!r}; for a task it never saw, --adapt-steps {UNSEEN_TASK_STEPS} "
            f"with {UNSEEN_TASK_MIN_PAIRS} or more example pairs (--num-pairs {UNSEEN_TASK_MIN_PAIRS}) fits it to the "
            f"pairs before answering (10-20 s a context on 2 CPU cores for lavin-tiny-icl)")


def split_pairs(cond: Tensor, query_frames: int, target_frames: int) -> tuple[list[Tensor], list[Tensor]]:
    """The example inputs and targets, ``(C, T, h, w)`` each, of a context's latents ``cond`` ``(C, T_cond, h, w)``.

    ``query_frames`` / ``target_frames``: latent frames of the query (and so of every input) and
    of one target: ``T_cond = N (query_frames + target_frames) + query_frames``.
    """
    step = query_frames + target_frames
    count, rest = divmod(cond.shape[1] - query_frames, step)
    if rest or count < 1:
        raise ValueError(f"a context of {cond.shape[1]} latent frames is not pairs of {query_frames} + {target_frames} "
                         f"frames and a {query_frames}-frame query")
    inputs = [cond[:, j * step: j * step + query_frames] for j in range(count)]
    targets = [cond[:, j * step + query_frames: (j + 1) * step] for j in range(count)]
    return inputs, targets


def leave_one_out(inputs: list[Tensor], targets: list[Tensor], batch_size: int, generator: torch.Generator
                  ) -> tuple[Tensor, Tensor]:
    """``batch_size`` training contexts ``(B, C, T, h, w)`` and their targets ``(B, C, T_t, h, w)``.

    Each holds out one pair drawn at random: its input is the query, its target the answer, and
    the other pairs, in a random order, are the context.
    """
    count = len(inputs)
    if count < 2:
        raise ValueError(f"leave-one-out adaptation needs at least 2 example pairs, got {count}")
    conds, answers = [], []
    for _ in range(batch_size):
        held = int(torch.randint(count, (1,), generator=generator))
        others = [i for i in range(count) if i != held]
        order = [others[i] for i in torch.randperm(len(others), generator=generator).tolist()]
        conds.append(torch.cat([x for i in order for x in (inputs[i], targets[i])] + [inputs[held]], dim=1))
        answers.append(targets[held])
    return torch.stack(conds), torch.stack(answers)


def adapt(denoiser: nn.Module, cond: Tensor, *, query_frames: int, target_frames: int, steps: int, lr: float,
          generator: torch.Generator, autocast: torch.dtype | None = None, batch_size: int = BATCH_SIZE) -> list[float]:
    """Fine-tune ``denoiser`` in place for ``steps`` AdamW steps on ``cond``'s leave-one-out contexts.

    Returns the loss of each step. Times are the training distribution's (logit-normal), noise
    and the held-out pairs come from ``generator`` (CPU), so a seed gives the same weights.
    """
    parameters = [p for p in denoiser.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the denoiser has no parameter that requires grad: nothing to adapt (use adapted(), "
                         "which trains every weight and restores them)")
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    loss_fn = FlowMatchingLoss(kind="official", l1_weight=0.1)
    times = LogitNormalTimeSampler()
    device = cond.device
    losses = []
    # also under a caller's inference_mode: its tensors cannot be saved for backward, a clone made here can
    with torch.inference_mode(False), torch.enable_grad():
        inputs, targets = split_pairs(cond.detach().clone(), query_frames, target_frames)
        for _ in range(steps):
            context, answer = leave_one_out(inputs, targets, batch_size, generator)
            t = times(batch_size, generator=generator)
            noise = torch.randn(answer.shape, generator=generator, device=generator.device)
            t, noise = t.to(device=device, dtype=answer.dtype), noise.to(device=device, dtype=answer.dtype)
            with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                prediction = denoiser(interpolate(answer, noise, t), t, context)
            loss = loss_fn(prediction.float(), target_velocity(answer, noise).float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    return losses


@contextmanager
def adapted(denoiser: nn.Module, cond: Tensor, **options) -> Iterator[list[float]]:
    """``adapt`` for the duration of a ``with`` block (it yields the losses). Every weight is
    trained, frozen or not; on exit, exception or not, the denoiser is as it was: its weights (one
    copy is kept meanwhile), which of them require grad, and no gradients left behind."""
    parameters = list(denoiser.parameters())
    saved = [p.detach().clone() for p in parameters]
    frozen = [not p.requires_grad for p in parameters]
    try:
        for parameter in parameters:
            parameter.requires_grad_(True)
        yield adapt(denoiser, cond, **options)
    finally:
        with torch.no_grad():
            for parameter, value, was_frozen in zip(parameters, saved, frozen):
                parameter.copy_(value)
                parameter.grad = None
                parameter.requires_grad_(not was_frozen)
