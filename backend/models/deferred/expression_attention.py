"""Expression conditioning: a rig's expression code as a few extra tokens the UNet attends to.

The code goes through one linear layer to ``tokens`` vectors of the text cross-attention width.
In every transformer block of the UNet's down and up blocks (the mid block stays unchanged, as in
DiffusionAvatars) the text cross-attention is followed by an expression cross-attention::

    z <- z + TextAttn(norm(z), text)
    z <- z + ExprAttn(norm(z) + TextAttn(...), expression tokens)

ExprAttn starts as a copy of the block's text attention (same Q, K, V) with a zero output
projection, so before training the UNet computes exactly what the base model computes.

The expression tokens travel appended to the text tokens in ``encoder_hidden_states``; each
replaced cross-attention splits them off again. The UNet's own code is not modified.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ExpressionEncoder(nn.Module):
    """Expression code (B, code_length) -> tokens (B, tokens, width)."""

    def __init__(self, code_length: int, tokens: int, width: int) -> None:
        super().__init__()
        self.tokens = tokens
        self.width = width
        self.linear = nn.Linear(code_length, tokens * width)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.linear(codes).view(codes.shape[0], self.tokens, self.width)


class TextThenExpressionAttention(nn.Module):
    """Stands in for a transformer block's ``attn2``: text attention, then (optionally) expression attention."""

    def __init__(self, text_attention: nn.Module, expression_tokens: int, with_expression: bool) -> None:
        super().__init__()
        self.text_attention = text_attention
        self.expression_tokens = expression_tokens
        self.expression_attention = _zero_output_copy(text_attention) if with_expression else None

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        if encoder_hidden_states is None:
            raise ValueError("the expression-conditioned UNet needs text + expression tokens as encoder_hidden_states")
        text = encoder_hidden_states[:, : -self.expression_tokens]
        expression = encoder_hidden_states[:, -self.expression_tokens:]
        output = self.text_attention(hidden_states, encoder_hidden_states=text, attention_mask=attention_mask, **kwargs)
        if self.expression_attention is not None:
            output = output + self.expression_attention(hidden_states + output, encoder_hidden_states=expression)
        return output


def _zero_output_copy(text_attention: nn.Module) -> nn.Module:
    attention = copy.deepcopy(text_attention)
    attention.requires_grad_(True)
    output_projection = attention.to_out[0]
    nn.init.zeros_(output_projection.weight)
    if output_projection.bias is not None:
        nn.init.zeros_(output_projection.bias)
    return attention


def add_expression_attention(unet: nn.Module, expression_tokens: int) -> nn.ModuleList:
    """Replace each transformer block's text cross-attention in ``unet`` (in place) and return the new
    expression attentions in a fixed order (down blocks, then up blocks) for saving and training.

    Mid-block cross-attentions only learn to ignore the expression tokens, as in the paper.
    """
    from diffusers.models.attention import BasicTransformerBlock

    layers = nn.ModuleList()
    for name, block in unet.named_modules():
        if not isinstance(block, BasicTransformerBlock) or block.attn2 is None:
            continue
        with_expression = not name.startswith("mid_block")
        block.attn2 = TextThenExpressionAttention(block.attn2, expression_tokens, with_expression)
        if with_expression:
            layers.append(block.attn2.expression_attention)
    if not layers:
        raise ValueError("the base UNet has no cross-attention transformer blocks to condition on expressions")
    return layers
