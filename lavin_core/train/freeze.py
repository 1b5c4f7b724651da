"""Training one part of a model: every parameter outside the named module paths is frozen.

    >>> freeze_all_but(vae, ["decoder.copy"])  # the copy gate alone trains; returns its parameter count

A module path names a submodule (``"decoder.copy"``) or a parameter (``"decoder.copy.net.2.bias"``)
by its dotted name in ``named_parameters``; it covers everything under it. Freezing happens before
the optimizer and any DDP/FSDP wrapper are built, which take only trainable parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def under(name: str, path: str) -> bool:
    """Whether the dotted ``name`` is ``path`` or lies under it (``"decoder.copy.net.0"`` under ``"decoder.copy"``)."""
    return name == path or name.startswith(path + ".")


def freeze_all_but(model: nn.Module, paths: Sequence[str]) -> int:
    """Sets ``requires_grad`` to whether each parameter lies under one of ``paths``; returns how many
    values stay trainable. Raises ``ValueError`` for a path that covers no parameter."""
    names = [name for name, _ in model.named_parameters()]
    for path in paths:
        if not any(under(name, path) for name in names):
            parts = sorted({name.rsplit(".", 2)[0] for name in names if under(name, path.split(".")[0])})
            hint = f"parts under {path.split('.')[0]!r}: {', '.join(parts[:8])}" if parts else \
                f"top-level parts: {', '.join(sorted({n.split('.')[0] for n in names}))}"
            raise ValueError(f"vae.train_only names {path!r}, which covers no parameter of this model ({hint})")
    trainable = 0
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(any(under(name, path) for path in paths))
        trainable += parameter.numel() if parameter.requires_grad else 0
    return trainable
