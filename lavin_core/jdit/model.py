"""``JDiT``: the joint diffusion transformer of LaVin-DiT.

Two token streams share every attention layer: the conditional stream (clean latents of the
example pairs and the query) and the target stream (the noisy target latents). Each stream has its
own patch embedding, q/k/v/output projections, QK RMSNorm weights, MLPs and adaLN modulation;
attention runs over the concatenated sequence ``[cond; target]`` with 3D RoPE positions
(frame along the joint sequence, patch row, patch column).

Per block and stream (sandwich norm, scale/gate adaLN without shift, tanh gates):

    s1, g1, s2, g2 = modulation(time + stream_embed)
    x = x + tanh(g1) * norm(attn(norm(x) * (1 + s1)))
    x = x + tanh(g2) * norm(mlp(norm(x) * (1 + s2)))
"""

from __future__ import annotations

import hashlib

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from lavin_core.jdit.qk_norm_rope import qk_norm_rope
from lavin_core.jdit.attention import attention
from lavin_core.checkpoint import PretrainedMixin
from lavin_core.interfaces import Denoiser
from lavin_core.jdit.config import JDiTConfig, get_preset
from lavin_core.jdit.layers import (
    FinalLayer,
    RMSNorm,
    SwiGLU,
    TimestepEmbedder,
    modulation,
    patch_embedder,
)
from lavin_core.jdit.rope import rope_tables

def tensor_seed(seed: int, name: str) -> int:
    """A 63-bit seed for the tensor ``name`` of a model (or random checkpoint) seeded by ``seed``."""
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


#: RoPE tables of one stream: cos, sin ``(L_stream, head_dim)``.
Rope = tuple[Tensor, Tensor]


class JointAttention(nn.Module):
    """Attention over ``[cond; x]`` with separate projections per stream and grouped key/value heads."""

    def __init__(self, config: JDiTConfig):
        super().__init__()
        self.config = config
        hidden, q_width = config.hidden_size, config.num_heads * config.head_dim
        kv_width = config.num_kv_heads * config.head_dim
        for stream in ("cond", "x"):
            self.add_module(f"{stream}_q", nn.Linear(hidden, q_width, bias=False))
            self.add_module(f"{stream}_k", nn.Linear(hidden, kv_width, bias=False))
            self.add_module(f"{stream}_v", nn.Linear(hidden, kv_width, bias=False))
            self.add_module(f"{stream}_qnorm", RMSNorm(q_width, eps=config.norm_eps, affine=True))
            self.add_module(f"{stream}_knorm", RMSNorm(kv_width, eps=config.norm_eps, affine=True))
            self.add_module(f"{stream}_proj", nn.Linear(q_width, hidden, bias=False))

    def _qkv(self, stream: str, h: Tensor, rope: Rope, *, need_q: bool) -> tuple[Tensor | None, Tensor, Tensor]:
        """Tokens ``(B, L, hidden)`` -> q ``(B, L, H, D)`` (None if not ``need_q``), k and v ``(B, L, H_kv, D)``.

        q and k are RMS-normed over their whole width, split into heads and rotated.
        """
        cfg = self.config
        k = getattr(self, f"{stream}_k")(h)
        k_weight = getattr(self, f"{stream}_knorm").weight
        if need_q:
            q, k = qk_norm_rope(
                getattr(self, f"{stream}_q")(h),
                k,
                getattr(self, f"{stream}_qnorm").weight,
                k_weight,
                *rope,
                num_heads=cfg.num_heads,
                num_kv_heads=cfg.num_kv_heads,
                eps=cfg.norm_eps,
            )
        else:
            # The kernel takes q and k together; k stands in for q (k is the narrow one).
            q, (_, k) = None, qk_norm_rope(
                k, k, k_weight, k_weight, *rope, num_heads=cfg.num_kv_heads, num_kv_heads=cfg.num_kv_heads,
                eps=cfg.norm_eps,
            )
        v = getattr(self, f"{stream}_v")(h).unflatten(-1, (cfg.num_kv_heads, cfg.head_dim))
        return q, k, v

    def forward(
        self, cond: Tensor, x: Tensor, rope_cond: Rope, rope_x: Rope, *, need_cond: bool = True
    ) -> tuple[Tensor | None, Tensor]:
        """cond ``(B, N, hidden)``, x ``(B, M, hidden)`` -> the same shapes.

        Without ``need_cond`` only the target tokens query (the conditional ones still serve as
        keys and values) and cond comes back as None.
        """
        qc, kc, vc = self._qkv("cond", cond, rope_cond, need_q=need_cond)
        qx, kx, vx = self._qkv("x", x, rope_x, need_q=True)
        out = attention(
            torch.cat((qc, qx), dim=1) if need_cond else qx,
            torch.cat((kc, kx), dim=1),
            torch.cat((vc, vx), dim=1),
            backend=self.config.attention_backend,
        ).flatten(2)  # (B, N + M or M, H * D)
        if not need_cond:
            return None, self.x_proj(out)
        out_cond, out_x = out.split((cond.shape[1], x.shape[1]), dim=1)
        return self.cond_proj(out_cond), self.x_proj(out_x)


class JDiTBlock(nn.Module):
    """One joint block: attention and SwiGLU, each with sandwich norm and scale/gate adaLN per stream."""

    def __init__(self, config: JDiTConfig):
        super().__init__()
        hidden, eps = config.hidden_size, config.norm_eps
        # The four sandwich norms have no weights, so one module each serves both streams.
        self.norm1 = RMSNorm(hidden, eps=eps, affine=False)
        self.post_norm1 = RMSNorm(hidden, eps=eps, affine=False)
        self.norm2 = RMSNorm(hidden, eps=eps, affine=False)
        self.post_norm2 = RMSNorm(hidden, eps=eps, affine=False)
        self.joint_attn = JointAttention(config)
        self.cond_mlp = SwiGLU(hidden, config.mlp_width)
        self.x_mlp = SwiGLU(hidden, config.mlp_width)
        self.cond_modulation = modulation(hidden, 4)
        self.x_modulation = modulation(hidden, 4)

    @staticmethod
    def _split(mod: nn.Module, c: Tensor) -> tuple[Tensor, ...]:
        """``(B, hidden)`` -> scale_attn, gate_attn, scale_mlp, gate_mlp, each ``(B, 1, hidden)``, gates through tanh."""
        s1, g1, s2, g2 = mod(c)[:, None].chunk(4, dim=-1)
        return s1, g1.tanh(), s2, g2.tanh()

    def forward(
        self,
        cond: Tensor,
        x: Tensor,
        c_cond: Tensor,
        c_x: Tensor,
        rope_cond: Rope,
        rope_x: Rope,
        *,
        last: bool = False,
    ) -> tuple[Tensor | None, Tensor]:
        """cond ``(B, N, hidden)``, x ``(B, M, hidden)``, conditioning vectors ``(B, hidden)``.

        In the ``last`` block nothing reads the conditional stream after attention, so its queries,
        output projection, residual and MLP are skipped and cond comes back as None. (Their
        weights exist in the official checkpoint but never receive gradients: DDP needs
        ``find_unused_parameters=True``.)
        """
        s1c, g1c, s2c, g2c = self._split(self.cond_modulation, c_cond)
        s1x, g1x, s2x, g2x = self._split(self.x_modulation, c_x)
        ac, ax = self.joint_attn(
            self.norm1(cond) * (1 + s1c), self.norm1(x) * (1 + s1x), rope_cond, rope_x, need_cond=not last
        )
        x = x + g1x * self.post_norm1(ax)
        x = x + g2x * self.post_norm2(self.x_mlp(self.norm2(x) * (1 + s2x)))
        if last:
            return None, x
        cond = cond + g1c * self.post_norm1(ac)
        cond = cond + g2c * self.post_norm2(self.cond_mlp(self.norm2(cond) * (1 + s2c)))
        return cond, x


class JDiT(PretrainedMixin, Denoiser):
    """The J-DiT denoiser: ``forward(z_t, t, cond)`` -> velocity ``v = e - z`` (LaVin's time convention).

    z_t ``(B, C, T_x, h, w)`` noisy target latents, t ``(B,)`` (or a scalar) in [0, 1] with 0 = data,
    cond ``(B, C, T_c, h, w)`` clean conditional latents; ``h`` and ``w`` multiples of the patch size.
    Returns ``(B, C, T_x, h, w)`` in ``z_t``'s dtype.
    """

    config_class = JDiTConfig
    get_preset = staticmethod(get_preset)

    def __init__(self, config: JDiTConfig):
        super().__init__()
        # Drawn first, before any submodule's own initialisation uses the global generator, so
        # that a model built on the meta device gets the same seed as one built in memory.
        self.init_seed = int(torch.randint(2**62, (), device="cpu"))
        self.config = config
        self.in_channels, self.patch_size = config.in_channels, config.patch_size
        hidden = config.hidden_size
        self.cond_embedder = patch_embedder(config.patch_dim, hidden)
        self.x_embedder = patch_embedder(config.patch_dim, hidden)
        # Type embeddings, added to the time embedding: "prompt" for the conditional stream,
        # "answer" for the target stream.
        self.prompt_embed = nn.Parameter(torch.empty(1, hidden))
        self.answer_embed = nn.Parameter(torch.empty(1, hidden))
        self.t_embedder = TimestepEmbedder(hidden)
        self.blocks = nn.ModuleList(JDiTBlock(config) for _ in range(config.depth))
        self.final_layer = FinalLayer(hidden, config.patch_dim, eps=config.norm_eps)
        self.initialize_weights(self.init_seed)

    def initialize_weights(self, seed: int | None = None) -> None:
        """The official initialisation: xavier Linears, zero-initialised adaLN and output layers.

        Each tensor is drawn from its own generator, seeded by ``(seed, its name)``, so a model
        built on the meta device and sharded can be initialised tensor by tensor
        (``init_parameter``) to exactly the values of one built whole. ``seed`` defaults to a
        draw from torch's global generator (``torch.manual_seed`` makes it reproducible).
        """
        if seed is None:
            seed = int(torch.randint(2**62, (), device="cpu"))
        self.init_seed = seed
        for name, param in self.named_parameters():
            self.init_parameter(name, param.data)

    def _zero_initialised(self) -> set[str]:
        """Names of the modules that start at zero: every adaLN modulation output and the output layer."""
        zero = [self.final_layer.adaLN_modulation[-1], self.final_layer.linear]
        for block in self.blocks:
            zero += [block.cond_modulation[-1], block.x_modulation[-1]]
        ids = {id(module) for module in zero}
        return {name for name, module in self.named_modules() if id(module) in ids}

    @torch.no_grad()
    def init_parameter(self, name: str, tensor: Tensor) -> None:
        """Fill ``tensor`` (the full, unsharded shape of parameter ``name``) with its initial values."""
        if tensor.is_meta:
            return
        owner_name, _, kind = name.rpartition(".")
        owner = self.get_submodule(owner_name) if owner_name else self
        generator = torch.Generator(device=tensor.device).manual_seed(tensor_seed(self.init_seed, name))
        if owner_name in self._zero_initialised() or kind == "bias":
            nn.init.zeros_(tensor)
        elif name in ("prompt_embed", "answer_embed", "t_embedder.mlp.0.weight", "t_embedder.mlp.2.weight"):
            nn.init.normal_(tensor, std=0.02, generator=generator)
        elif isinstance(owner, nn.Linear):
            nn.init.xavier_uniform_(tensor, generator=generator)
        else:  # norm scales (LayerNorm / RMSNorm weights)
            nn.init.ones_(tensor)

    # -- shapes ---------------------------------------------------------------------------------

    def _check_inputs(self, z_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Raise a one-line ``ValueError`` naming the tensor and dim that do not fit; returns t as ``(B,)``."""
        p, channels = self.patch_size, self.in_channels
        for name, tensor in (("z_t", z_t), ("cond", cond)):
            if tensor.ndim != 5:
                raise ValueError(f"{name} must be (B, C, T, h, w) latents, got shape {tuple(tensor.shape)}")
            if tensor.shape[1] != channels:
                raise ValueError(f"{name} has {tensor.shape[1]} channels (dim 1), the model takes {channels}")
            for dim, label in ((3, "height"), (4, "width")):
                size = tensor.shape[dim]
                if size % p or size == 0:
                    raise ValueError(
                        f"{name} latent {label} (dim {dim}) is {size}, not a multiple of the patch size "
                        f"{p}; use {max(p, size - size % p)} or {size - size % p + p}"
                    )
        for dim, label in ((0, "batch"), (3, "height"), (4, "width")):
            if cond.shape[dim] != z_t.shape[dim]:
                raise ValueError(
                    f"cond {label} (dim {dim}) is {cond.shape[dim]} but z_t's is {z_t.shape[dim]}; "
                    "the conditional and target latents must share batch, height and width"
                )
        if t.ndim == 0:
            t = t.expand(z_t.shape[0])
        if t.shape != (z_t.shape[0],):
            raise ValueError(f"t must be a scalar or (B,) = ({z_t.shape[0]},), got shape {tuple(t.shape)}")
        return t

    def _patchify(self, latents: Tensor) -> Tensor:
        """``(B, C, T, h, w)`` -> ``(B, T * h/p * w/p, p * p * C)``."""
        p = self.patch_size
        return rearrange(latents, "b c t (h ph) (w pw) -> b (t h w) (ph pw c)", ph=p, pw=p)

    def _unpatchify(self, tokens: Tensor, frames: int, height: int, width: int) -> Tensor:
        p = self.patch_size
        return rearrange(
            tokens, "b (t h w) (ph pw c) -> b c t (h ph) (w pw)", t=frames, h=height // p, w=width // p, ph=p, pw=p
        )

    # -- forward --------------------------------------------------------------------------------

    def forward(self, z_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        t = self._check_inputs(z_t, torch.as_tensor(t, device=z_t.device), cond)
        official = self.config.time_convention == "official"
        if official:
            t = 1 - t  # the authors' network: 0 = noise, 1 = data
        frames_c, (frames_x, height, width) = cond.shape[2], z_t.shape[2:]
        p = self.patch_size

        cos, sin = rope_tables(
            frames_c + frames_x,
            height // p,
            width // p,
            self.config.head_dim,
            base=self.config.rope_base,
            device=z_t.device,
        )
        n_cond = frames_c * (height // p) * (width // p)
        rope_cond, rope_x = (cos[:n_cond], sin[:n_cond]), (cos[n_cond:], sin[n_cond:])

        h_cond = self.cond_embedder(self._patchify(cond))  # (B, N, hidden)
        h_x = self.x_embedder(self._patchify(z_t))  # (B, M, hidden)
        time = self.t_embedder(t)  # (B, hidden)
        c_cond, c_x = time + self.prompt_embed, time + self.answer_embed

        use_checkpoint = self.config.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            args, last = (h_cond, h_x, c_cond, c_x, rope_cond, rope_x), i == len(self.blocks) - 1
            if use_checkpoint:
                h_cond, h_x = checkpoint(block, *args, last=last, use_reentrant=False)
            else:
                h_cond, h_x = block(*args, last=last)

        v = self._unpatchify(self.final_layer(h_x, c_x), frames_x, height, width)
        return (-v if official else v).to(z_t.dtype)
