"""Recurrent text classifiers of §4.2: LSTM (IMDB), BiLSTM (PHEME), two-layer BiGRU (AG News).

Shape: embedding (300) -> RNN (300 hidden) -> dropout -> FC on the last hidden state; for a
bidirectional RNN the last layer's forward and backward final states are concatenated (so the
FC is 600 -> classes). Each row is read to its true length (tokens before the first padding
id), as the authors' ``pack_padded_sequence`` code does, so padding never enters the final
state; :mod:`models.varlen` computes the same states without packing.

Parameter names: ``embedding.weight``, ``rnn.weight_ih_l0`` (``_reverse`` for the backward
direction, ``_l1`` for the second layer), ``fc.weight``, ``fc.bias``.

Paper aliases (Tables 5-7):

- ``Embedding`` -> ``embedding.weight`` (the paper's input attack for text, §3).
- ``Lstm.ih.w`` / ``Gru.ih.w`` -> ``rnn.weight_ih_l0``: the *first layer's forward-direction*
  input-hidden weight only. This is the tensor the authors' notebooks attack
  (``'rnn.rnn.weight_ih_l0'`` on the two-layer BiGRU of AG News and on PHEME), and it keeps
  each alias one tensor. ``Lstm.hh.w`` / ``Gru.hh.w`` likewise -> ``rnn.weight_hh_l0``.
- ``Gru.ih.w.reverse`` (``Lstm.ih.w.reverse``, ``...hh.w.reverse``) -> the first layer's
  backward-direction tensor, ``rnn.weight_ih_l0_reverse``.
- ``.b`` in place of ``.w`` names the biases; the second layer is ``Gru.ih.w.l1``,
  ``Gru.ih.w.l1.reverse`` and so on.
- ``Fc.w`` / ``Fc.b`` -> ``fc.weight`` / ``fc.bias``.
"""

from __future__ import annotations

import torch
from torch import nn

from models import varlen
from models.aliases import PaperModel

__all__ = ["TextRNN", "bigru", "bilstm", "embedding_layer", "lstm", "rnn_aliases"]

_CELLS = {"lstm": (nn.LSTM, "Lstm"), "gru": (nn.GRU, "Gru")}


def embedding_layer(
    vocab_size: int, embed_dim: int, padding_idx: int, pretrained: torch.Tensor | None
) -> nn.Embedding:
    """An embedding, initialised from ``pretrained`` (vocab_size x embed_dim) when given."""
    if vocab_size < 2 or embed_dim < 1:
        raise ValueError(
            f"embedding: expected vocab_size >= 2 and embed_dim >= 1, got {vocab_size}, {embed_dim}"
        )
    emb = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
    if pretrained is not None:
        if tuple(pretrained.shape) != (vocab_size, embed_dim):
            raise ValueError(
                f"pretrained: expected shape ({vocab_size}, {embed_dim}), "
                f"got {tuple(pretrained.shape)}"
            )
        with torch.no_grad():
            emb.weight.copy_(pretrained)
            emb.weight[padding_idx].zero_()
    return emb


def rnn_aliases(rnn: nn.RNNBase, prefix: str, module: str = "rnn") -> dict[str, list[str]]:
    """``{prefix}.ih.w`` style aliases for every layer and direction of ``rnn``."""
    out: dict[str, list[str]] = {}
    directions = [("", "")] + ([("_reverse", ".reverse")] if rnn.bidirectional else [])
    for layer in range(rnn.num_layers):
        tag = "" if layer == 0 else f".l{layer}"
        for kind in ("ih", "hh"):
            for short, param in (("w", "weight"), ("b", "bias")):
                for suffix, alias_suffix in directions:
                    name = f"{module}.{param}_{kind}_l{layer}{suffix}"
                    out[f"{prefix}.{kind}.{short}{tag}{alias_suffix}"] = [name]
    return out


class TextRNN(PaperModel):
    """Embedding -> (Bi)LSTM/GRU -> dropout -> linear, from the last hidden state.

    Args:
        vocab_size: rows of the embedding (special tokens included).
        num_classes: outputs of the FC layer.
        cell: ``"lstm"`` or ``"gru"``.
        bidirectional: concatenate both directions' final states (FC input ``2 * hidden``).
        num_layers: stacked RNN layers.
        embed_dim, hidden: 300 and 300 in the paper.
        padding_idx: the padding token id; sequences end at its first occurrence.
        dropout: rate of the dropout before the FC layer (0 as in the paper; the ``dropout``
            comparison method sets it).
        pretrained: initial embedding vectors (e.g. GloVe), ``vocab_size x embed_dim``.
    """

    input_alias = "Embedding"
    rnn_path: str | None = None  # a :data:`models.varlen.PATHS` key; None: the device's default

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        *,
        cell: str = "lstm",
        bidirectional: bool = False,
        num_layers: int = 1,
        embed_dim: int = 300,
        hidden: int = 300,
        padding_idx: int = 0,
        dropout: float = 0.0,
        pretrained: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell: expected one of {sorted(_CELLS)}, got {cell!r}")
        rnn_cls, self._prefix = _CELLS[cell]
        self.paper_name = ("Bi" if bidirectional else "") + cell.upper()
        self.padding_idx = padding_idx
        self.embedding = embedding_layer(vocab_size, embed_dim, padding_idx, pretrained)
        self.rnn = rnn_cls(
            embed_dim, hidden, num_layers=num_layers, batch_first=True, bidirectional=bidirectional
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def paper_aliases(self) -> dict[str, list[str]]:
        return {
            "Embedding": ["embedding.weight"],
            **rnn_aliases(self.rnn, self._prefix),
            "Fc.w": ["fc.weight"],
            "Fc.b": ["fc.bias"],
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: token ids ``(batch, length)``, right-padded with ``padding_idx``."""
        lengths = sequence_lengths(x, self.padding_idx)
        width = int(lengths.max())  # columns past the longest row are padding in every row
        last = varlen.final_states(self.rnn, self.embedding(x[:, :width]), lengths, self.rnn_path)
        return self.fc(self.dropout(last))


def sequence_lengths(x: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """Tokens before the first padding id, at least 1 (an all-padding row reads one pad)."""
    if x.dim() != 2 or x.is_floating_point():
        raise ValueError(
            f"text model input: expected integer token ids of shape (batch, length), "
            f"got {x.dtype} {tuple(x.shape)}"
        )
    is_pad = x == padding_idx
    first_pad = torch.where(is_pad.any(1), is_pad.int().argmax(1), x.shape[1])
    return first_pad.clamp(min=1)


def lstm(vocab_size: int, num_classes: int = 2, **kw) -> TextRNN:
    """IMDB: embedding 300 -> LSTM 300-300 (one layer) -> FC 300-2."""
    return TextRNN(vocab_size, num_classes, cell="lstm", **kw)


def bilstm(vocab_size: int, num_classes: int = 2, **kw) -> TextRNN:
    """PHEME: embedding 300 -> BiLSTM 300-300 -> FC 600-2."""
    return TextRNN(vocab_size, num_classes, cell="lstm", bidirectional=True, **kw)


def bigru(vocab_size: int, num_classes: int = 4, **kw) -> TextRNN:
    """AG News: embedding 300 -> two BiGRU layers 300-300 -> FC 600-4."""
    return TextRNN(vocab_size, num_classes, cell="gru", bidirectional=True, num_layers=2, **kw)
