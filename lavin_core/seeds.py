"""The seed convention every level shares: 63-bit seeds mixed from integer keys.

- Training sample ``i`` of a run with seed ``s`` draws its examples with ``mix_seed(s, i)``
  (``lavin_core.data.loader``), a 63-bit number; evaluation uses small fixed seeds such as 2026,
  so the two never meet.
- A context's task instance (``Task.instance``: the hidden parameters drawn per context) comes
  from ``context_seed(seed, index)``: context ``index`` of a stream of contexts with ``seed``.
"""

from __future__ import annotations

import numpy as np

#: Mixed into every instance seed, so that an instance seed never equals an example seed.
_INSTANCE_KEY = 0x1A57


def mix_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> 1)


def context_seed(seed: int, index: int) -> int:
    """The seed of context ``index``'s task instance in a stream of contexts drawn with ``seed``."""
    return mix_seed(seed, index, _INSTANCE_KEY)
