"""Time grids for sampling: pure functions of a step count, returning ``(num_steps + 1,)`` float64 tensors.

Every grid runs from ``t = 1`` (noise) down to ``t = 0`` (data), strictly decreasing. Samplers
walk a grid by position (step ``i`` goes from ``grid[i]`` to ``grid[i + 1]``); nothing ever looks
a time up by float equality.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lavin_core.errors import UnknownNameError
from lavin_core.flow import shift_time

#: The authors' grids in *their* time convention (0 = noise, 1 = data), by number of points.
#: Their sampler (torchdiffeq Euler) walks these points; ``20`` is the default of their inference
#: script. The first half is uniform up to 0.05 (fine steps while the image is pure noise), the
#: second half grows quadratically.
OFFICIAL_GRIDS: dict[int, tuple[float, ...]] = {
    20: (
        0.0, 0.0056, 0.0111, 0.0167, 0.0222, 0.0278, 0.0333, 0.0389, 0.0444, 0.0500,
        0.0524, 0.0730, 0.1148, 0.1777, 0.2618, 0.3671, 0.4936, 0.6412, 0.8100, 1.0,
    ),
    30: (
        0.0, 0.0036, 0.0071, 0.0107, 0.0143, 0.0179, 0.0214, 0.0250, 0.0286, 0.0321,
        0.0357, 0.0393, 0.0429, 0.0464, 0.0500, 0.0511, 0.0600, 0.0779, 0.1049, 0.1410,
        0.1862, 0.2403, 0.3036, 0.3759, 0.4573, 0.5477, 0.6472, 0.7557, 0.8733, 1.0,
    ),
    40: (
        0.0, 0.0026, 0.0053, 0.0079, 0.0105, 0.0132, 0.0158, 0.0184, 0.0211, 0.0237,
        0.0263, 0.0289, 0.0316, 0.0342, 0.0368, 0.0395, 0.0421, 0.0447, 0.0474, 0.0500,
        0.0506, 0.0555, 0.0655, 0.0804, 0.1004, 0.1253, 0.1553, 0.1902, 0.2302, 0.2752,
        0.3251, 0.3801, 0.4401, 0.5051, 0.5750, 0.6500, 0.7300, 0.8150, 0.9050, 1.0,
    ),
}

#: Steps of the official default grid (20 points).
OFFICIAL_STEPS = 19


def _check_steps(num_steps: int) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")


def official_schedule(num_steps: int = OFFICIAL_STEPS) -> Tensor:
    """The authors' grid for ``num_steps`` in {19, 29, 39}, converted to our time: ``1 - t_official``."""
    _check_steps(num_steps)
    points = OFFICIAL_GRIDS.get(num_steps + 1)
    if points is None:
        known = ", ".join(str(n - 1) for n in OFFICIAL_GRIDS)
        raise ValueError(
            f"the official schedule exists for {known} steps, got {num_steps}; "
            f"use the 'uniform' or 'shifted' schedule (lavin run --schedule) for other step counts"
        )
    return 1.0 - torch.tensor(points, dtype=torch.float64)


def uniform_schedule(num_steps: int) -> Tensor:
    """``num_steps`` equal steps from 1 to 0."""
    _check_steps(num_steps)
    return torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)


def shifted_schedule(num_steps: int, shift: float = 3.0) -> Tensor:
    """Uniform steps bent by the resolution time shift (``flow.shift_time``).

    ``shift > 1`` makes the steps finer near noise and coarser near data, as the official grid is.
    """
    return shift_time(uniform_schedule(num_steps), shift)


def auto_schedule(num_steps: int = OFFICIAL_STEPS) -> Tensor:
    """The authors' grid where they published one (19, 29 or 39 steps), else uniform steps.

    Uniform, not a stretched copy of the official grid, below and between those counts: at 1-8
    steps the official grid's fine start near noise wastes most of the budget (``lavin bench
    --steps 1/2/4/8`` measured it), and uniform grids are what few-step samplers use.
    """
    _check_steps(num_steps)
    return official_schedule(num_steps) if num_steps + 1 in OFFICIAL_GRIDS else uniform_schedule(num_steps)


#: Schedules by name; each is ``f(num_steps, **options) -> (num_steps + 1,)`` float64 grid.
SCHEDULES: dict[str, Callable[..., Tensor]] = {
    "auto": auto_schedule,
    "official": official_schedule,
    "uniform": uniform_schedule,
    "shifted": shifted_schedule,
}


def get_schedule(name: str, num_steps: int, **options) -> Tensor:
    """The grid of the schedule called ``name``; ``UnknownNameError`` lists the known ones."""
    try:
        schedule = SCHEDULES[name]
    except KeyError:
        raise UnknownNameError("schedule", name, SCHEDULES) from None
    grid = schedule(num_steps, **options)
    if not (grid[0] == 1.0 and grid[-1] == 0.0 and bool((grid[1:] < grid[:-1]).all())):
        raise AssertionError(f"schedule {name!r} is not strictly decreasing from 1 to 0: {grid.tolist()}")
    return grid
