"""TextRCNN (Lai et al., 2015) on IMDB, for the paper's Figure 2.

Embedding (300) -> BiLSTM (300 per direction) -> for each word ``[forward; embedding;
backward]`` -> linear (900 -> 300) + tanh -> max over the text's words -> dropout -> FC
(300 -> classes). Padding positions are excluded from the max. The BiLSTM reads each row to
its own length (:func:`models.varlen.outputs`; the authors packed the rows).

Parameter names: ``embedding.weight``, ``rnn.*`` (as :mod:`models.text_rnn`),
``proj.weight``/``bias``, ``fc.weight``/``bias``. Aliases: ``Embedding``, ``Lstm.ih.w``,
``Lstm.hh.w``, ``Lstm.ih.w.reverse``, ... (first layer, as in :mod:`models.text_rnn`),
``Proj.w``/``Proj.b`` (the word-representation layer), ``Fc.w``/``Fc.b``.
"""

from __future__ import annotations

import torch
from torch import nn

from models import varlen
from models.aliases import PaperModel
from models.text_rnn import embedding_layer, rnn_aliases, sequence_lengths

__all__ = ["TextRCNN", "textrcnn"]


class TextRCNN(PaperModel):
    """Recurrent convolutional text classifier; see the module docstring."""

    paper_name = "TextRCNN"
    input_alias = "Embedding"
    rnn_path: str | None = None  # a :data:`models.varlen.PATHS` key; None: the device's default

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        *,
        embed_dim: int = 300,
        hidden: int = 300,
        padding_idx: int = 0,
        dropout: float = 0.0,
        pretrained: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.padding_idx = padding_idx
        self.embedding = embedding_layer(vocab_size, embed_dim, padding_idx, pretrained)
        self.rnn = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden + embed_dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)

    def paper_aliases(self) -> dict[str, list[str]]:
        return {
            "Embedding": ["embedding.weight"],
            **rnn_aliases(self.rnn, "Lstm"),
            "Proj.w": ["proj.weight"],
            "Proj.b": ["proj.bias"],
            "Fc.w": ["fc.weight"],
            "Fc.b": ["fc.bias"],
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = sequence_lengths(x, self.padding_idx)
        width = int(lengths.max())  # columns past the longest row are padding in every row
        emb = self.embedding(x[:, :width])
        out = varlen.outputs(self.rnn, emb, lengths, self.rnn_path)
        hidden = self.rnn.hidden_size
        words = torch.cat([out[..., :hidden], emb, out[..., hidden:]], dim=2)
        h = torch.tanh(self.proj(words))  # (batch, width, hidden)
        valid = torch.arange(width, device=x.device)[None, :] < lengths[:, None]
        pooled = h.masked_fill(~valid[..., None], float("-inf")).amax(dim=1)
        return self.fc(self.dropout(pooled))


def textrcnn(vocab_size: int, num_classes: int = 2, **kw) -> TextRCNN:
    """Figure 2's TextRCNN: BiLSTM 300 + word projection 300 on a 300-d embedding."""
    return TextRCNN(vocab_size, num_classes, **kw)
