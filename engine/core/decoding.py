"""The parts of a batched decode loop on a preallocated KV cache, shared by ``LocalGenerator``
(evaluation, batch inference, the API server) and the teacher's structure-guided mode.

Why not ``model.generate``: transformers' default ``DynamicCache`` concatenates every layer's
keys and values at each step, copying the whole cache once per new token (1.6 GB per step for
60 rows of ~600 tokens), and a batch keeps every finished row until its longest row ends. Both
made evaluation memory-bound: a bigger batch was *slower* per token (docs/benchmarks.md). Here:

- the cache is allocated once for prompt + budget (``GrowingCache``), written in place, and
  attention reads only the columns filled so far (a static cache reads all of them every step);
- rows that are done are dropped from the cache (one gather) once a quarter of them are done,
  so a batch pays for its live rows only;
- the prompt is prefilled in groups of rows, so the prefill's attention scratch stays small.

The loop itself stays with its caller (the guided mode has its own stop rules); this module
holds the pieces: the cache, the prefill, row dropping (``drop_finished``) and sampling.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, StaticCache
from transformers.cache_utils import StaticLayer


class GrowingLayer(StaticLayer):
    """A preallocated layer whose attention covers only the columns written so far.

    ``StaticLayer`` returns (and masks) the whole ``max_cache_len`` at every step, so each step
    reads the empty tail too; a view of the filled columns reads only what is there, with no
    copy. Columns are written in place as in ``StaticLayer``."""

    def update(self, key_states, value_states, *args, **kwargs):
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        n = int(self.cumulative_length)
        return keys[:, :, :n], values[:, :, :n]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        # called before ``update``: the keys will cover what is written plus this query
        return (int(self.cumulative_length) if self.is_initialized else 0) + query_length, 0


class GrowingCache(StaticCache):
    """A ``StaticCache`` of ``GrowingLayer``s (sliding-window layers are left as they are)."""

    def __init__(self, config, max_cache_len: int):
        super().__init__(config=config, max_cache_len=max_cache_len)
        self.layers = [GrowingLayer(max_cache_len=layer.max_cache_len) if type(layer) is StaticLayer else layer
                       for layer in self.layers]

    def filled(self) -> int:
        return int(self.layers[0].cumulative_length)


def left_pad(prompts: list[list[int]], pad: int, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids left-padded to ``width`` (default: the longest) and the matching 0/1 mask."""
    width = width or max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        if p:
            ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[r, width - len(p):] = 1
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (left padding gets 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def prefill(model, ids: torch.Tensor, mask: torch.Tensor, cache_len: int, group: int = 16, repeat: int = 1):
    """Run the prompts ``ids`` (left padded, ``mask``) through ``model`` in groups of ``group``
    rows, and return (a ``GrowingCache`` of ``cache_len`` columns holding them, each row
    ``repeat`` times in a row, the last position's logits per row in fp32).

    Each group is prefilled into its own ``DynamicCache`` and copied into the preallocated cache:
    prefilling all rows at once would hold rows x heads x width x width attention scores."""
    device = next(model.parameters()).device
    pos = positions(mask)
    groups, logits = [], []
    for start in range(0, ids.shape[0], max(1, group)):
        sl = slice(start, start + group)
        dyn = DynamicCache(config=model.config)
        out = model(input_ids=ids[sl].to(device), attention_mask=mask[sl].to(device), position_ids=pos[sl].to(device),
                    cache=dyn, use_cache=True, logits_to_keep=1)
        logits.append(out.logits[:, -1, :].float())
        groups.append(dyn)
    cache = GrowingCache(model.config, max_cache_len=cache_len)
    width = ids.shape[1]
    for i, layer in enumerate(cache.layers):
        k = torch.cat([g.layers[i].keys for g in groups]) if len(groups) > 1 else groups[0].layers[i].keys
        v = torch.cat([g.layers[i].values for g in groups]) if len(groups) > 1 else groups[0].layers[i].values
        if repeat > 1:
            k, v = k.repeat_interleave(repeat, dim=0), v.repeat_interleave(repeat, dim=0)
        layer.lazy_initialization(k, v)
        layer.keys[:, :, :width] = k
        layer.values[:, :, :width] = v
        layer.cumulative_length.fill_(width)
    del groups
    out = torch.cat(logits) if len(logits) > 1 else logits[0]
    return cache, (out.repeat_interleave(repeat, dim=0) if repeat > 1 else out)


def drop_rows(cache, keep: torch.Tensor) -> None:
    """Keep only the rows ``keep`` (indices) of every layer of ``cache``, in that order."""
    for layer in cache.layers:
        idx = keep.to(layer.keys.device)
        layer.keys = layer.keys.index_select(0, idx)
        layer.values = layer.values.index_select(0, idx)
        layer.batch_size = len(keep)


def drop_finished(cache, present: list[int], active: list[bool], *tensors):
    """The cache bookkeeping of a decode step: once a quarter of the rows in ``cache`` are done
    (``active`` false), drop them (``drop_rows``) and the same rows of ``tensors`` (the mask, the
    positions, the last tokens ...: indexed on dim 0, each on its own device; None stays None).

    ``present`` maps a position in the cache to the caller's row. Returns (present, active,
    tensors), unchanged while fewer rows are done: a gather per finished row would cost more
    than the rows it saves."""
    if len(present) - sum(active) < max(1, len(present) // 4):
        return present, active, tensors
    keep = torch.tensor([j for j, a in enumerate(active) if a], dtype=torch.long)
    drop_rows(cache, keep)
    tensors = tuple(None if t is None else t[keep.to(t.device)] for t in tensors)
    return [present[j] for j in keep.tolist()], [True] * len(keep), tensors


def sample(logits: torch.Tensor, temperature: float, top_p: float, rng: torch.Generator | None) -> torch.Tensor:
    """The next token of each row: greedy at temperature 0, else nucleus sampling with ``rng``.

    >>> sample(torch.tensor([[0.0, 2.0, 1.0]]), 0.0, 1.0, None).tolist()
    [1]
    >>> g = torch.Generator().manual_seed(0)
    >>> sample(torch.tensor([[0.0, 9.0, 0.0]]), 1.0, 0.5, g).tolist()   # top_p keeps the one likely token
    [1]
    """
    if not temperature or temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / float(temperature), dim=-1)
    if top_p < 1.0:
        sp, si = torch.sort(probs, dim=-1, descending=True)
        drop = sp.cumsum(-1) - sp > float(top_p)
        sp[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, si, sp)
    return torch.multinomial(probs, 1, generator=rng).squeeze(-1)
