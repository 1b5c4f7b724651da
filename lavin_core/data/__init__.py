"""Data in: images and clips as pixels, template folders, example datasets, the latent cache and
the context loader that training reads.

- ``images``: read, write, resize and check pixels ``(3, T, H, W)`` in [-1, 1].
- ``templates``: the authors' ``NAME_input.png`` / ``NAME_target.png`` folders.
- ``datasets``: a template folder as a source of ``Example``s.
- ``latents``: the ``LatentCache`` protocol and its content key.
- ``cache``: the Zarr latent cache on any fsspec URL.
- ``loader``: ``ContextLoader``, the in-context batches of J-DiT training.
"""
