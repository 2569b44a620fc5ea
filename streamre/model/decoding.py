"""Greedy decoding, and its guard against a looping output (which needs no model)."""

from __future__ import annotations


def repeating_tail(tokens: list[int], max_period: int = 32) -> int:
    """How many tokens to cut when the sequence ends in a block said again and again (3 times
    for blocks of 3 or more tokens; at least 8 tokens of repeats for shorter ones); else 0.

    The cut keeps the first copy of the block.
    """
    n = len(tokens)
    for period in range(1, min(max_period, n // 3) + 1):
        copies = max(3, -(-8 // period))
        if copies * period > n:
            continue
        block = tokens[n - period:]
        if all(tokens[n - (k + 1) * period: n - k * period] == block for k in range(1, copies)):
            return (copies - 1) * period
    return 0


def greedy_decode(model, memory, memory_mask, prompt, budgets: list[int]
                  ) -> tuple[list[list[int]], list[list[float]]]:
    """Greedy, batched decoding with a key/value cache: each row starts from its `prompt` row
    (B, P) and writes at most its budget of tokens. A row whose output starts repeating itself
    stops, the repeats cut off (`repeating_tail`). Returns each row's tokens up to, not
    including, the end token, and their log-probabilities."""
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    batch = memory.shape[0]
    eos = model.config.whisper["eos_token_id"]
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    tokens: list[list[int]] = [[] for _ in range(batch)]
    scores: list[list[float]] = [[] for _ in range(batch)]
    live = [b for b in range(batch) if budgets[b] > 0]
    step_input = prompt
    table = model.decoder.embed_tokens.weight
    while live:
        hidden = model.decoder_hidden(step_input, memory, memory_mask, cache)[:, -1]
        logprobs = (hidden @ table.T).float().log_softmax(-1)
        best, chosen = logprobs.max(-1)
        for b in list(live):
            token = int(chosen[b])
            if token == eos:
                live.remove(b)
                continue
            tokens[b].append(token)
            scores[b].append(float(best[b]))
            cut = repeating_tail(tokens[b])
            if cut or len(tokens[b]) >= budgets[b]:
                del tokens[b][len(tokens[b]) - cut:], scores[b][len(scores[b]) - cut:]
                live.remove(b)
        # Finished rows keep being fed their end token; their outputs are not read.
        step_input = torch.where(
            torch.tensor([b in live for b in range(batch)], device=chosen.device),
            chosen, torch.full_like(chosen, eos))[:, None]
    return tokens, scores
