"""The spatial transformer of latent diffusion UNets (Rombach et al. 2022, sec. 3.3): image tokens attend to
themselves and, through cross-attention, to a conditioning sequence such as CLIP text states.

``Transformer2DModel`` = GroupNorm -> 1x1 conv (or linear) in -> ``BasicTransformerBlock`` x N -> out, plus the
input. A ``BasicTransformerBlock`` is pre-LayerNorm self-attention, cross-attention and a GEGLU feed-forward
(Shazeer 2020), each residual. Parameter names follow diffusers (``norm``, ``proj_in``, ``transformer_blocks.0.attn1
.to_q``, ``ff.net.0.proj``, ...) so UNet2DConditionModel checkpoints load unchanged.

Attention control (Prompt-to-Prompt, Hertz et al. 2022) plugs in through ``set_attention_controller``: a
controller called as ``controller(probs_or_None, is_cross, layer_name)`` for every attention layer of every
spatial transformer; see ``AttentionController``.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from zoo_core.nn.attention import Attention

FeedForwardActivation = Literal["geglu", "gelu", "gelu-approximate"]


class GEGLU(nn.Module):
    """A gated linear unit with a GELU gate: ``a * gelu(b)`` where ``[a, b] = proj(x)``."""

    def __init__(self, dim_in: int, dim_out: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * dim_out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class GELU(nn.Module):
    """Linear then GELU (exact or tanh-approximate), diffusers' non-gated feed-forward input."""

    def __init__(self, dim_in: int, dim_out: int, approximate: str = "none", bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out, bias=bias)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate=self.approximate)


class FeedForward(nn.Module):
    """``net = [activation-projection, dropout, linear]``: dim -> mult * dim -> dim."""

    def __init__(
        self,
        dim: int,
        dim_out: int | None = None,
        mult: int = 4,
        dropout: float = 0.0,
        activation_fn: FeedForwardActivation = "geglu",
        inner_dim: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        inner = inner_dim or int(dim * mult)
        if activation_fn == "geglu":
            act: nn.Module = GEGLU(dim, inner, bias=bias)
        elif activation_fn == "gelu":
            act = GELU(dim, inner, bias=bias)
        elif activation_fn == "gelu-approximate":
            act = GELU(dim, inner, approximate="tanh", bias=bias)
        else:
            raise ValueError(
                f"Unsupported feed-forward activation {activation_fn!r}; expected geglu, gelu or gelu-approximate"
            )
        self.net = nn.ModuleList([act, nn.Dropout(dropout), nn.Linear(inner, dim_out or dim, bias=bias)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    """x += attn1(norm1(x)); x += attn2(norm2(x), context); x += ff(norm3(x)).

    - ``attn1`` is self-attention (cross-attention to the context with ``only_cross_attention``);
    - ``attn2`` exists when ``cross_attention_dim`` is set (cross-attention) or ``double_self_attention``;
    - ``attention_bias`` adds biases to ``to_q``/``to_k``/``to_v`` (SD has none).
    """

    def __init__(
        self,
        dim: int,
        num_attention_heads: int,
        attention_head_dim: int,
        dropout: float = 0.0,
        cross_attention_dim: int | None = None,
        activation_fn: FeedForwardActivation = "geglu",
        attention_bias: bool = False,
        only_cross_attention: bool = False,
        double_self_attention: bool = False,
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.only_cross_attention = only_cross_attention
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.attn1 = Attention(
            dim,
            cross_attention_dim=cross_attention_dim if only_cross_attention else None,
            heads=num_attention_heads,
            dim_head=attention_head_dim,
            dropout=dropout,
            bias=attention_bias,
        )
        if cross_attention_dim is not None or double_self_attention:
            self.norm2: nn.LayerNorm | None = nn.LayerNorm(
                dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine
            )
            self.attn2: Attention | None = Attention(
                dim,
                cross_attention_dim=None if double_self_attention else cross_attention_dim,
                heads=num_attention_heads,
                dim_head=attention_head_dim,
                dropout=dropout,
                bias=attention_bias,
            )
        else:
            self.norm2 = None
            self.attn2 = None
        self.norm3 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.ff = FeedForward(dim, dropout=dropout, activation_fn=activation_fn)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        context = encoder_hidden_states if self.only_cross_attention else None
        hidden_states = hidden_states + self.attn1(
            self.norm1(hidden_states), context, attention_mask=attention_mask
        )
        if self.attn2 is not None:
            hidden_states = hidden_states + self.attn2(
                self.norm2(hidden_states), encoder_hidden_states, attention_mask=encoder_attention_mask
            )
        return hidden_states + self.ff(self.norm3(hidden_states))


class Transformer2DModel(nn.Module):
    """A spatial transformer over the H*W positions of a feature map, with a residual around it all.

    ``in_channels`` is projected to ``num_attention_heads * attention_head_dim`` channels by a 1x1 conv (SD v1) or,
    with ``use_linear_projection``, a linear layer on the flattened tokens (SD v2).
    """

    def __init__(
        self,
        num_attention_heads: int,
        attention_head_dim: int,
        in_channels: int,
        out_channels: int | None = None,
        num_layers: int = 1,
        dropout: float = 0.0,
        norm_num_groups: int = 32,
        cross_attention_dim: int | None = None,
        attention_bias: bool = False,
        activation_fn: FeedForwardActivation = "geglu",
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
        double_self_attention: bool = False,
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        inner = num_attention_heads * attention_head_dim
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(norm_num_groups, in_channels, eps=1e-6, affine=True)
        if use_linear_projection:
            self.proj_in: nn.Module = nn.Linear(in_channels, inner)
        else:
            self.proj_in = nn.Conv2d(in_channels, inner, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(
                inner,
                num_attention_heads,
                attention_head_dim,
                dropout=dropout,
                cross_attention_dim=cross_attention_dim,
                activation_fn=activation_fn,
                attention_bias=attention_bias,
                only_cross_attention=only_cross_attention,
                double_self_attention=double_self_attention,
                norm_elementwise_affine=norm_elementwise_affine,
                norm_eps=norm_eps,
            )
            for _ in range(num_layers)
        )
        if use_linear_projection:
            self.proj_out: nn.Module = nn.Linear(inner, self.out_channels)
        else:
            self.proj_out = nn.Conv2d(inner, self.out_channels, kernel_size=1)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, C, H, W] features, [B, L, D] context -> [B, C_out, H, W]. Masks broadcast to the attention
        scores [B, heads, N_q, N_kv] (bool: True = attend, or an additive float bias)."""
        b, _, h, w = hidden_states.shape
        residual = hidden_states
        x = self.norm(hidden_states)
        if self.use_linear_projection:
            x = self.proj_in(x.permute(0, 2, 3, 1).reshape(b, h * w, -1))
        else:
            x = self.proj_in(x)
            x = x.permute(0, 2, 3, 1).reshape(b, h * w, -1)
        for block in self.transformer_blocks:
            x = block(x, encoder_hidden_states, attention_mask, encoder_attention_mask)
        if self.use_linear_projection:
            x = self.proj_out(x).reshape(b, h, w, -1).permute(0, 3, 1, 2)
        else:
            x = self.proj_out(x.reshape(b, h, w, -1).permute(0, 3, 1, 2))
        return x + residual


# -- attention control ----------------------------------------------------------------------------------------
@runtime_checkable
class AttentionController(Protocol):
    """Edits or records attention maps of spatial transformers (Prompt-to-Prompt's ``AttentionControl``).

    ``controller(probs, is_cross, layer_name)`` is called in every forward pass of every controlled layer, in
    execution order. ``probs`` is [B, heads, N_q, N_kv] (N_kv = text tokens for cross-attention); the controller
    returns edited probabilities, or None to keep them. ``layer_name`` is the module path
    (``down_blocks.0.attentions.0.transformer_blocks.0.attn2``), from which ``"down"``/``"mid"``/``"up"`` follow.

    Computing explicit probabilities is slower than the fused kernel, so a controller may also define
    ``wants_probs(is_cross, layer_name) -> bool``: when it returns False the fused kernel runs and the controller
    is called with ``probs=None`` (to count layers and steps), its return value ignored.
    """

    def __call__(
        self, probs: torch.Tensor | None, is_cross: bool, layer_name: str
    ) -> torch.Tensor | None: ...


class _ControllerHook:
    """Adapts an ``AttentionController`` to one layer's ``Attention.hook``."""

    def __init__(self, controller: AttentionController, is_cross: bool, layer_name: str) -> None:
        self.controller = controller
        self.is_cross = is_cross
        self.layer_name = layer_name

    def wants_probs(self, attn: Attention) -> bool:
        ask = getattr(self.controller, "wants_probs", None)
        return True if ask is None else bool(ask(self.is_cross, self.layer_name))

    def __call__(self, probs: torch.Tensor | None, attn: Attention) -> torch.Tensor | None:
        edited = self.controller(probs, self.is_cross, self.layer_name)
        return probs if edited is None else edited


def set_attention_controller(model: nn.Module, controller: AttentionController | None) -> list[str]:
    """Route the attention layers of every ``BasicTransformerBlock`` in ``model`` through ``controller``
    (``None`` removes it, restoring the fused kernel). Returns the controlled layer names in module order."""
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, BasicTransformerBlock):
            continue
        for attr in ("attn1", "attn2"):
            attn = getattr(module, attr)
            if attn is None:
                continue
            layer_name = f"{name}.{attr}" if name else attr
            is_cross = attn.is_cross_attention
            attn.hook = None if controller is None else _ControllerHook(controller, is_cross, layer_name)
            names.append(layer_name)
    return names
