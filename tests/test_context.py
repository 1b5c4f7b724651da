"""TaskContext and ExamplePair validation, and the Encoder.latent_shape rule."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_core import Encoder, ExamplePair, TaskContext


def pixels(frames=1, height=16, width=16, seed=0):
    return torch.rand(3, frames, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@settings(max_examples=25, deadline=None)
@given(num_pairs=st.integers(0, 4), k=st.integers(0, 2), height=st.integers(1, 5), width=st.integers(1, 5))
def test_valid_contexts_keep_their_frames_in_order(num_pairs, k, height, width):
    frames, size = 1 + 4 * k, (16 * height, 16 * width)
    pairs = [ExamplePair(input=pixels(frames, *size, seed=2 * i), target=pixels(frames, *size, seed=2 * i + 1))
             for i in range(num_pairs)]
    query = pixels(frames, *size, seed=99)
    context = TaskContext(task="depth", pairs=pairs, query=query)
    sequence = context.frames()
    assert len(sequence) == 2 * num_pairs + 1 and sequence[-1] is query
    assert all(sequence[2 * i] is pair.input and sequence[2 * i + 1] is pair.target for i, pair in enumerate(pairs))
    assert context.target_shape == (3, frames, *size)
    with pytest.raises(AttributeError):
        context.task = "pose"  # frozen


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (pixels() * 3, r"values in \[.*\]; pixels must lie in \[-1, 1\]"),
        (pixels(frames=3), "has 3 frames; a clip needs 1 \\+ 4k frames"),
        (pixels()[:2], r"must have shape \(3, T, H, W\)"),
        (pixels()[0], r"must have shape \(3, T, H, W\)"),
        ((pixels() * 127).to(torch.uint8), "must be a float tensor"),
        (pixels().masked_fill(torch.rand(3, 1, 16, 16) > 0.5, float("nan")), "NaN"),
    ],
)
def test_bad_query_gets_one_clear_line(tensor, message):
    with pytest.raises(ValueError, match=message) as info:
        TaskContext(task="depth", pairs=[], query=tensor)
    assert "query" in str(info.value) and "\n" not in str(info.value)


def test_mismatched_shapes_name_the_pair():
    good = ExamplePair(input=pixels(), target=pixels(seed=1))
    small = ExamplePair(input=pixels(height=32), target=pixels(height=32, seed=1))
    with pytest.raises(ValueError, match=r"pairs\[1\].input has shape \(3, 1, 32, 16\) but the query"):
        TaskContext(task="depth", pairs=[good, small], query=pixels(seed=5))
    with pytest.raises(ValueError, match="resize them to one size"):
        ExamplePair(input=pixels(), target=pixels(height=32))
    with pytest.raises(TypeError, match=r"pairs\[0\] must be an ExamplePair"):
        TaskContext(task="depth", pairs=[(pixels(), pixels())], query=pixels())
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        TaskContext(task="depth", pairs=[], query=[[0.0]])


def test_clips_and_images_may_mix_between_input_and_target():
    # Video frame prediction: a 5-frame input clip, a 1-frame target.
    pair = ExamplePair(input=pixels(frames=5), target=pixels(frames=1))
    context = TaskContext(task="video", pairs=[pair], query=pixels(frames=5, seed=3))
    assert context.target_shape == (3, 1, 16, 16)


class ShapeOnlyEncoder(Encoder):
    temporal_compression, spatial_compression, latent_channels = 4, 8, 16

    def encode(self, pixels, *, generator=None):
        raise NotImplementedError  # only latent_shape is under test

    def decode(self, latents):
        raise NotImplementedError


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 3), k=st.integers(0, 4), h=st.integers(1, 8), w=st.integers(1, 8))
def test_latent_shape_follows_the_compression(batch, k, h, w):
    encoder = ShapeOnlyEncoder()
    assert encoder.latent_shape((batch, 3, 1 + 4 * k, 8 * h, 8 * w)) == (batch, 16, 1 + k, h, w)


def test_latent_shape_errors_say_what_would_work():
    encoder = ShapeOnlyEncoder()
    with pytest.raises(ValueError, match="use 5 or 9 frames"):
        encoder.latent_shape((1, 3, 7, 16, 16))
    with pytest.raises(ValueError, match="try 16x32"):
        encoder.latent_shape((1, 3, 1, 20, 33))
    with pytest.raises(ValueError, match="3 channels"):
        encoder.latent_shape((1, 4, 1, 16, 16))
