"""Training examples: ChatML conversations -> token ids and labels, batches, and their order.

Why these choices:
- Loss only on the assistant turns: labels come from the chat template's character spans (the
  rendered prefix up to each assistant turn), never from pad masks, because SmolLM2's pad token
  *is* its end token ``<|im_end|>`` and the end token must be learned.
- Dynamic padding with length-grouped batches: padding every row to ``max_length`` spends most
  of the compute and memory on pad tokens (see bench/training.py).
- The data order is a pure function of (seed, epoch) (``EpochSampler``), so a run resumed in
  its second epoch skips exactly the batches it had trained on, and every DDP rank agrees on it.

torch is imported inside the functions that need it.
"""

from __future__ import annotations

import random

from engine.training.runs import DataError

# Base models without a chat template (Mistral-7B-v0.1 is a base model) get ChatML, the format of
# the training data; the BOS token opens the sequence as in the model's pre-training.
CHATML_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def ensure_chat_template(tokenizer) -> bool:
    """Give a tokenizer without a chat template (a base model's) the ChatML one; True if it did."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = CHATML_TEMPLATE
    return True


def _render(tokenizer, messages, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant turn in it.

    A span runs from the end of the generation prompt before the turn to the end of the turn's
    rendering without trailing whitespace, so it covers the answer and its end token
    (``...<|im_end|>``) but not the newline the template puts after it.
    """
    text = _render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        upto = _render(tokenizer, messages[:i + 1])
        if not (text.startswith(upto) and upto.startswith(before)):
            raise DataError("the chat template renders a conversation differently from its prefixes "
                            "(cannot find the assistant turns); use a model with a prefix-stable template")
        spans.append((len(before), len(upto.rstrip())))
    return text, spans


def encode_example(tokenizer, messages: list[dict], max_length: int) -> dict | None:
    """``{"input_ids", "labels"}`` with -100 everywhere but the assistant turns; None if no label survives
    truncation to ``max_length``."""
    text, spans = assistant_spans(tokenizer, messages)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        labels = [-100] * len(ids)
        for k, (s, e) in enumerate(enc["offset_mapping"]):
            if e > s and any(e > a and s < b for a, b in spans):
                labels[k] = ids[k]
    else:  # slow tokenizers have no offsets: tokenize the prefixes instead
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        labels = [-100] * len(ids)
        for a, b in spans:
            start = len(tokenizer(text[:a], add_special_tokens=False)["input_ids"]) if a else 0
            end = len(tokenizer(text[:b], add_special_tokens=False)["input_ids"])
            labels[start:end] = ids[start:end]
    truncated = len(ids) > max_length
    if truncated:
        ids, labels = _fit(ids, labels, max_length)
    if all(x == -100 for x in labels):
        return None
    return {"input_ids": ids, "labels": labels, "truncated": truncated}


def _fit(ids: list[int], labels: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """Shorten an over-long example to ``max_length``, cutting the prompt before the answer.

    Why: a reasoning chain ends with the final answer, so cutting the end (plain truncation)
    would train the model on chains that never reach their answer. When the answer fits, tokens
    are removed from the middle of the prompt before it (the middle of the transcript: its
    start, the system prompt and the instruction at its end survive); otherwise the end is cut.
    """
    excess = len(ids) - max_length
    first = next((k for k, x in enumerate(labels) if x != -100), len(labels))
    keep_edges = 32  # prompt tokens kept on each side of the cut
    if first - 2 * keep_edges >= excess:
        start = (first - excess) // 2
        return ids[:start] + ids[start + excess:], labels[:start] + labels[start + excess:]
    return ids[:max_length], labels[:max_length]



def collate(features: list[dict], pad_id: int, pad_to: int | None = None, multiple_of: int | None = None,
            logits_only: bool = False) -> dict:
    """Right-pad a batch to its longest example (or to ``pad_to``); padded labels are -100.

    With ``logits_only`` the batch also carries ``logits_to_keep``, a (batch, length) mask of the
    positions whose next token is a label: the model then projects only those hidden states onto
    the vocabulary (``label_loss`` computes the loss from them).
    """
    import torch

    n = pad_to or max(len(f["input_ids"]) for f in features)
    if multiple_of:
        n = -(-n // multiple_of) * multiple_of
    input_ids = torch.full((len(features), n), pad_id, dtype=torch.long)
    labels = torch.full((len(features), n), -100, dtype=torch.long)
    attention = torch.zeros((len(features), n), dtype=torch.long)
    for i, f in enumerate(features):
        k = min(len(f["input_ids"]), n)
        input_ids[i, :k] = torch.tensor(f["input_ids"][:k])
        labels[i, :k] = torch.tensor(f["labels"][:k])
        attention[i, :k] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
    if logits_only:
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != -100
        batch["logits_to_keep"] = keep
    return batch


def label_loss(outputs, labels, num_items_in_batch=None):
    """Cross-entropy from logits computed only at the kept positions (see ``collate``).

    The logits come flattened in row-major order of the kept positions, which is the order of
    ``labels[:, 1:]``'s labelled entries. Summed and divided by the labelled tokens of the whole
    accumulated batch when the Trainer passes that count (so gradient accumulation weighs every
    token equally), else a mean.
    """
    import torch.nn.functional as F

    logits = outputs["logits"]
    shifted = labels[:, 1:]
    targets = shifted[shifted != -100].to(logits.device)
    loss = F.cross_entropy(logits.float(), targets, reduction="sum")
    if num_items_in_batch is None:
        return loss / max(1, targets.numel())
    return loss / num_items_in_batch


class EpochSampler:
    """Index order for one epoch, a pure function of (seed, epoch).

    With ``group`` it groups similar lengths: shuffle, cut into mega-batches of ``group_size``
    examples, sort each by length (longest first) so consecutive batches need little padding,
    and start with the longest mega-batch so an out-of-memory shows at step 1, not hours in.
    """

    def __init__(self, lengths: list[int], seed: int, group: bool = True, group_size: int = 64):
        self.lengths = list(lengths)
        self.seed = seed
        self.group = group
        self.group_size = max(1, group_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        return iter(self.order(self.epoch))

    def order(self, epoch: int) -> list[int]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        idx = list(range(len(self.lengths)))
        rng.shuffle(idx)
        if not self.group:
            return idx
        megas = [sorted(idx[i:i + self.group_size], key=lambda j: -self.lengths[j])
                 for i in range(0, len(idx), self.group_size)]
        longest = max(range(len(megas)), key=lambda m: self.lengths[megas[m][0]])
        megas[0], megas[longest] = megas[longest], megas[0]
        return [j for m in megas for j in m]

