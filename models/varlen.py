"""Run an ``nn.LSTM``/``nn.GRU`` over right-padded rows of unequal length, without packing.

What the text models need from their RNN, for rows of true lengths ``L_b`` in a padded batch:

- :func:`final_states`: the last layer's state after each row's own last token (forward
  direction at ``L_b - 1``, backward direction after reading back to token 0), concatenated
  over directions;
- :func:`outputs`: the last layer's per-position outputs, exact at positions ``t < L_b``.

Both are what ``pack_padded_sequence`` gives (the ``"packed"`` path, kept as the reference),
computed instead over the padded batch trimmed to its longest row (the ``"split"`` path):
each layer's forward direction reads the padded rows and is read at ``L_b - 1``; its backward
direction reads each row reversed within its own length (a gather that leaves padding in
place) with the layer's own reverse weights, and is un-reversed by the same gather. Padding
only ever follows a row's tokens, so it never reaches a state that is read.

Why: on CPU the packed LSTM's backward costs 15-20x the padded one (upstream,
pytorch/pytorch#149194); the split path costs what the padded batch costs
(``bench/text_step.py``, docs/benchmarks.md). Each direction runs through ``torch._VF``
with the module's own ``_flat_weights`` (the registered Parameters, no copies), so parameter
names, checkpoints and in-place perturbations (DropAttack) are untouched. On CPU the default
(``"auto"``) still packs a GRU batch that is mostly padding, where packing a GRU is the faster
of the two (:data:`PACKED_BELOW_FILL`); length-aware batches (``bucket``) avoid such batches.

On CUDA only a call that covers the module's whole flat-weight buffer (or its prefix) keeps
cuDNN's flat weights valid: the module itself, or layer 0's forward direction. A reverse or
second-layer direction alone would make cuDNN copy the weights every call, so on CUDA
(:data:`DEFAULT_PATHS`) a one-layer unidirectional RNN takes ``"split"`` (which is then the
module itself on the trimmed batch, read at each row's last token) and a bidirectional one
keeps ``"packed"`` (cuDNN's own variable-length kernels), as no GPU has measured the
alternative yet: ``"twin"``, one call of the bidirectional module on the rows stacked with
their right-aligned copies (forward outputs from the first half, backward from the second:
twice the rows, one cuDNN call, flat weights valid). Deeper bidirectional stacks cannot be
split into layers without per-call copies, so ``"twin"`` runs those as ``"split"``.
``bench/text_step.py --device cuda --reference --paths twin`` measures the choice.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import _VF, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = [
    "DEFAULT_PATHS",
    "PACKED_BELOW_FILL",
    "PATHS",
    "choose_path",
    "final_states",
    "outputs",
    "reverse_index",
]

Result = tuple[torch.Tensor | None, torch.Tensor]  # (per-position outputs, final states)


def reverse_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """``(batch, width)`` positions that reverse each row within its length; padding stays.

    Position ``t < L`` maps to ``L - 1 - t`` and ``t >= L`` to itself, so the gather is its
    own inverse.
    """
    t = torch.arange(width, device=lengths.device)[None, :]
    L = lengths[:, None]
    return torch.where(t < L, L - 1 - t, t)


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[2]))


def _at(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Row ``b``'s vector at time ``positions[b]``: ``(batch, features)``."""
    return x[torch.arange(x.shape[0], device=x.device), positions]


def _direction(rnn: nn.RNNBase, x: torch.Tensor, layer: int, reverse: bool) -> torch.Tensor:
    """Outputs ``(batch, T, hidden)`` of one layer-direction of ``rnn`` read forward over ``x``."""
    per = 4 if rnn.bias else 2
    start = (layer * (2 if rnn.bidirectional else 1) + int(reverse)) * per
    weights = rnn._flat_weights[start : start + per]
    h0 = x.new_zeros(1, x.shape[0], rnn.hidden_size)
    if isinstance(rnn, nn.LSTM):
        out = _VF.lstm(x, (h0, h0), weights, rnn.bias, 1, 0.0, rnn.training, False, True)
    else:
        out = _VF.gru(x, h0, weights, rnn.bias, 1, 0.0, rnn.training, False, True)
    return out[0]


def _split(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, need_outputs: bool) -> Result:
    last = lengths - 1
    if not rnn.bidirectional and rnn.num_layers == 1:
        out = rnn(x)[0]  # the module itself: cuDNN's flat weights as they are
        return (out if need_outputs else None), _at(out, last)
    index = reverse_index(lengths, x.shape[1])
    h = x
    for layer in range(rnn.num_layers):
        if layer and rnn.dropout and rnn.training:
            h = nn.functional.dropout(h, rnn.dropout, True)
        forward = _direction(rnn, h, layer, False)
        if not rnn.bidirectional:
            h = forward
            continue
        backward_reversed = _direction(rnn, _gather_time(h, index), layer, True)
        if layer == rnn.num_layers - 1 and not need_outputs:
            return None, torch.cat([_at(forward, last), _at(backward_reversed, last)], 1)
        h = torch.cat([forward, _gather_time(backward_reversed, index)], 2)
    if not rnn.bidirectional:
        return (h if need_outputs else None), _at(h, last)
    hidden = rnn.hidden_size
    return h, torch.cat([_at(h[..., :hidden], last), h[:, 0, hidden:]], 1)


def _twin(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, need_outputs: bool) -> Result:
    """One call of a one-layer bidirectional module on ``[rows; rows right-aligned]``."""
    if rnn.num_layers != 1 or not rnn.bidirectional:
        return _split(rnn, x, lengths, need_outputs)
    batch, width = x.shape[:2]
    t = torch.arange(width, device=x.device)[None, :]
    shift = (width - lengths)[:, None]
    right = (t - shift) % width  # right-aligned row: its tokens end at width - 1
    out = rnn(torch.cat([x, _gather_time(x, right)], 0))[0]
    hidden = rnn.hidden_size
    forward, backward = out[:batch, :, :hidden], out[batch:, :, hidden:]
    final = torch.cat([_at(forward, lengths - 1), _at(backward, shift[:, 0])], 1)
    if not need_outputs:
        return None, final
    back = _gather_time(backward, (t + shift) % width)  # left-aligned again
    return torch.cat([forward, back], 2), final


def _packed(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, need_outputs: bool) -> Result:
    """The reference: ``pack_padded_sequence`` as the authors' code does."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, state = rnn(packed)
    h = state[0] if isinstance(state, tuple) else state  # (layers * dirs, batch, hidden)
    final = torch.cat([h[-2], h[-1]], dim=1) if rnn.bidirectional else h[-1]
    if not need_outputs:
        return None, final
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], final


#: Fill (real tokens over ``batch x longest``) below which packing a batch is faster than
#: the split path on CPU, per cell; measured with bench/text_step.py (AG News BiGRU: packed
#: costs 0.49x the padded batch at fill 0.30, so a packed token costs ~1.6 padded ones). The
#: packed LSTM's backward costs 15-20x the padded one, so an LSTM never packs.
PACKED_BELOW_FILL: dict[type[nn.RNNBase], float] = {nn.GRU: 0.6}


def _auto(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, need_outputs: bool) -> Result:
    """Packed where the batch is mostly padding and packing this cell is cheap, else split."""
    fill = float(lengths.sum()) / (x.shape[0] * x.shape[1])
    path = _packed if fill < PACKED_BELOW_FILL.get(type(rnn), 0.0) else _split
    return path(rnn, x, lengths, need_outputs)


PATHS: dict[str, Callable[[nn.RNNBase, torch.Tensor, torch.Tensor, bool], Result]] = {
    "auto": _auto,
    "split": _split,
    "twin": _twin,
    "packed": _packed,
}

#: (device type, bidirectional, more than one layer) -> path; unlisted: "auto".
DEFAULT_PATHS: dict[tuple[str, bool, bool], str] = {
    ("cuda", False, False): "split",
    ("cuda", True, False): "packed",
    ("cuda", True, True): "packed",
}


def choose_path(rnn: nn.RNNBase, device: torch.device) -> str:
    """The default path for ``rnn`` on ``device`` (see the module docstring)."""
    return DEFAULT_PATHS.get((device.type, rnn.bidirectional, rnn.num_layers > 1), "auto")


def _run(
    rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, need_outputs: bool, path: str | None
) -> Result:
    if rnn.proj_size or not rnn.batch_first:
        raise ValueError("varlen: expected a batch_first RNN without projections")
    path = path or choose_path(rnn, x.device)
    if path not in PATHS:
        raise ValueError(f"varlen path: expected one of {sorted(PATHS)}, got {path!r}")
    width = int(lengths.max())
    x = x[:, :width]
    if path != "packed" and bool((lengths == width).all()):
        out, state = rnn(x)  # every row full length: the module as it is
        h = state[0] if isinstance(state, tuple) else state
        final = torch.cat([h[-2], h[-1]], 1) if rnn.bidirectional else h[-1]
        return (out if need_outputs else None), final
    return PATHS[path](rnn, x, lengths, need_outputs)


def final_states(
    rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, path: str | None = None
) -> torch.Tensor:
    """``(batch, dirs * hidden)``: the last layer's states after each row's own tokens.

    ``x``: ``(batch, T, features)`` right-padded; ``lengths``: tokens per row, ``1..T``.
    """
    return _run(rnn, x, lengths, False, path)[1]


def outputs(
    rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, path: str | None = None
) -> torch.Tensor:
    """``(batch, max(lengths), dirs * hidden)``: the last layer's outputs, exact where
    ``t < lengths[b]`` (later positions hold values no valid position depends on)."""
    return _run(rnn, x, lengths, True, path)[0]
