"""Multi-head dot-product attention over spatial tokens or sequences, self- or cross- (Vaswani et al. 2017).

One module serves the UNet's spatial self-attention blocks (group norm, residual connection, 4-D input) and the
cross-attention of text-to-image UNets (``cross_attention_dim``, 3-D input). Parameter names follow diffusers'
``Attention`` (``group_norm``, ``to_q``, ``to_k``, ``to_v``, ``to_out.0``) so its state dicts load unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

# An attention hook sees the softmax probabilities [B, heads, N_q, N_kv] and returns (possibly edited) ones:
# cross-attention control (Prompt-to-Prompt) and attention-map visualisation plug in here. A hook object may also
# define ``wants_probs(attn) -> bool``: when that returns False the fused kernel runs and the hook is called with
# None instead of probabilities (so it can still count layers and steps); its return value is then ignored.
AttentionHook = Callable[[torch.Tensor | None, "Attention"], torch.Tensor | None]


class Attention(nn.Module):
    """``out = to_out(softmax(q k^T / sqrt(d)) v)`` with ``q`` from the input and ``k``, ``v`` from the context.

    - 4-D input [B, C, H, W] is flattened to H*W tokens and reshaped back; 3-D input [B, N, C] is used as is.
    - ``norm_num_groups`` adds a GroupNorm over channels before the projections (the DDPM attention block).
    - ``residual_connection`` adds the input back; the sum is divided by ``rescale_output_factor``.
    - ``cross_attention_dim`` sizes ``to_k``/``to_v`` for an ``encoder_hidden_states`` context of that width.
    - ``hook`` (``None`` by default) receives the attention probabilities and returns the ones to use; without a
      hook the fused ``scaled_dot_product_attention`` kernel runs.
    """

    def __init__(
        self,
        query_dim: int,
        cross_attention_dim: int | None = None,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
        bias: bool = False,
        out_bias: bool = True,
        norm_num_groups: int | None = None,
        eps: float = 1e-5,
        residual_connection: bool = False,
        rescale_output_factor: float = 1.0,
        out_dim: int | None = None,
    ) -> None:
        super().__init__()
        if heads < 1 or dim_head < 1:
            raise ValueError(f"Attention needs heads >= 1 and dim_head >= 1, got {heads} and {dim_head}")
        self.heads = heads
        self.dim_head = dim_head
        self.inner_dim = heads * dim_head
        self.query_dim = query_dim
        self.cross_attention_dim = cross_attention_dim or query_dim
        self.is_cross_attention = cross_attention_dim is not None
        self.out_dim = out_dim or query_dim
        self.residual_connection = residual_connection
        self.rescale_output_factor = rescale_output_factor
        self.scale = dim_head**-0.5
        self.hook: AttentionHook | None = None

        self.group_norm = (
            nn.GroupNorm(norm_num_groups, query_dim, eps=eps, affine=True) if norm_num_groups else None
        )
        self.to_q = nn.Linear(query_dim, self.inner_dim, bias=bias)
        self.to_k = nn.Linear(self.cross_attention_dim, self.inner_dim, bias=bias)
        self.to_v = nn.Linear(self.cross_attention_dim, self.inner_dim, bias=bias)
        self.to_out = nn.ModuleList(
            [nn.Linear(self.inner_dim, self.out_dim, bias=out_bias), nn.Dropout(dropout)]
        )

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.dim_head).transpose(1, 2)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[B, heads, N, d] queries, keys, values -> [B, heads, N, d]; the hook point for attention control."""
        hook = self.hook
        wants_probs = getattr(hook, "wants_probs", None)
        if hook is None or (wants_probs is not None and not wants_probs(self)):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            if hook is not None:
                hook(None, self)
            return out
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        probs = hook(scores.float().softmax(dim=-1).to(q.dtype), self)
        return torch.matmul(probs, v)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``attention_mask`` broadcasts to [B, heads, N_q, N_kv] (bool: True = attend, or additive float)."""
        residual = hidden_states
        spatial = hidden_states.ndim == 4
        if self.group_norm is not None:
            if spatial:
                hidden_states = self.group_norm(hidden_states)
            else:
                hidden_states = self.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        if spatial:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.flatten(2).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states

        q = self._split_heads(self.to_q(hidden_states))
        k = self._split_heads(self.to_k(context))
        v = self._split_heads(self.to_v(context))
        out = self.attend(q, k, v, attention_mask)
        out = out.transpose(1, 2).reshape(out.shape[0], -1, self.inner_dim)
        out = self.to_out[1](self.to_out[0](out))

        if spatial:
            out = out.transpose(1, 2).reshape(b, self.out_dim, h, w)
        if self.residual_connection:
            out = out + residual
        if self.rescale_output_factor != 1.0:
            out = out / self.rescale_output_factor
        return out


_LEGACY_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_LEGACY_ATTENTION_KEY = re.compile(r"^(.*attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$")


def rename_legacy_attention_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the attention names of early diffusers checkpoints (``query``/``key``/``value``/``proj_attn``, still
    in e.g. ``google/ddpm-*`` ``.bin`` files) onto ``to_q``/``to_k``/``to_v``/``to_out.0``; other keys pass."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = _LEGACY_ATTENTION_KEY.match(key)
        if match:
            prefix, name, kind = match.groups()
            key = f"{prefix}.{_LEGACY_ATTENTION_NAMES[name]}.{kind}"
        out[key] = value
    return out
