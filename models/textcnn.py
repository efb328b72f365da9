"""TextCNN (Kim, 2014) on IMDB, for the paper's Figure 2.

Embedding (300) -> one 1-D convolution per kernel size (3, 4, 5; 100 filters each; ReLU) ->
max over time -> dropout -> FC (300 -> classes). The max runs over the windows that start
inside the text, so padding never decides the pooled feature (a text shorter than the kernel
keeps its first window); the columns past a batch's longest row are cut before the
convolutions, which changes nothing but their cost.

Parameter names: ``embedding.weight``, ``convs.{i}.weight``/``bias``, ``fc.weight``/``bias``.
Paper-style aliases: ``Embedding``, ``Conv.{i}.w``/``.b`` (1-based, in kernel-size order),
``Fc.w``/``Fc.b``.
"""

from __future__ import annotations

import torch
from torch import nn

from models.aliases import PaperModel
from models.text_rnn import embedding_layer, sequence_lengths

__all__ = ["TextCNN", "textcnn"]


class TextCNN(PaperModel):
    """Kim's CNN for sentence classification; see the module docstring."""

    paper_name = "TextCNN"
    input_alias = "Embedding"

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        *,
        embed_dim: int = 300,
        kernel_sizes: tuple[int, ...] = (3, 4, 5),
        filters: int = 100,
        padding_idx: int = 0,
        dropout: float = 0.0,
        pretrained: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if not kernel_sizes or min(kernel_sizes) < 1 or filters < 1:
            raise ValueError(
                f"textcnn: expected kernel sizes >= 1 and filters >= 1, "
                f"got {kernel_sizes}, {filters}"
            )
        self.padding_idx = padding_idx
        self.kernel_sizes = tuple(kernel_sizes)
        self.embedding = embedding_layer(vocab_size, embed_dim, padding_idx, pretrained)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(filters * len(self.kernel_sizes), num_classes)

    def paper_aliases(self) -> dict[str, list[str]]:
        out = {"Embedding": ["embedding.weight"]}
        for i in range(len(self.convs)):
            out[f"Conv.{i + 1}.w"] = [f"convs.{i}.weight"]
            out[f"Conv.{i + 1}.b"] = [f"convs.{i}.bias"]
        out["Fc.w"], out["Fc.b"] = ["fc.weight"], ["fc.bias"]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = sequence_lengths(x, self.padding_idx)
        # Windows past the longest row are masked anyway: cut them (exact, and cheaper).
        width = max(int(lengths.max()), max(self.kernel_sizes))
        x = x[:, :width]
        if width > x.shape[1]:
            x = nn.functional.pad(x, (0, width - x.shape[1]), value=self.padding_idx)
        emb = self.embedding(x).transpose(1, 2)  # (batch, embed, length)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            h = torch.relu(conv(emb))  # (batch, filters, width - k + 1)
            starts = torch.arange(h.shape[2], device=x.device)
            valid = starts[None, :] < (lengths - k + 1).clamp(min=1)[:, None]
            pooled.append(h.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=2))
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))


def textcnn(vocab_size: int, num_classes: int = 2, **kw) -> TextCNN:
    """Figure 2's TextCNN: kernels 3/4/5 x 100 filters on a 300-d embedding."""
    return TextCNN(vocab_size, num_classes, **kw)
