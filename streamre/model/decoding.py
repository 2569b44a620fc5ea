"""Greedy decoding for the aligned model, with the guards against a looping output
(`streamre.whisper.decoding`)."""

from __future__ import annotations

from streamre.whisper.decoding import repeating_tail


def greedy_decode(model, memory, memory_mask, prompt, budgets: list[int], prompt_real=None,
                  stop: int | None = None) -> tuple[list[list[int]], list[list[float]]]:
    """Greedy, batched decoding with a key/value cache: each row starts from its `prompt` row
    (B, P; left-padded where `prompt_real` is False) and writes at most its budget of tokens;
    a row ends at the end token, or after writing `stop`. A row whose output starts repeating
    itself stops, the repeats cut off (`repeating_tail`). Returns each row's tokens up to,
    not including, the end token, and their log-probabilities."""
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    batch = memory.shape[0]
    eos = model.config.whisper["eos_token_id"]
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    tokens: list[list[int]] = [[] for _ in range(batch)]
    scores: list[list[float]] = [[] for _ in range(batch)]
    live = [b for b in range(batch) if budgets[b] > 0]
    step_input, real = prompt, prompt_real
    table = model.decoder.embed_tokens.weight
    while live:
        hidden = model.decoder_hidden(step_input, memory, memory_mask, cache, real)[:, -1]
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
            if cut or len(tokens[b]) >= budgets[b] or token == stop:
                del tokens[b][len(tokens[b]) - cut:], scores[b][len(scores[b]) - cut:]
                live.remove(b)
        # Finished rows keep being fed their end token; their outputs are not read.
        step_input = torch.where(
            torch.tensor([b in live for b in range(batch)], device=chosen.device),
            chosen, torch.full_like(chosen, eos))[:, None]
        if real is not None:
            real = torch.cat([real, torch.ones_like(real[:, :1])], 1)
    return tokens, scores


def decode_in_orders(model, memory, memory_mask, budgets: list[int],
                     order_ids: list[int | None], facts: int,
                     prompts: list[list[int]] | None = None
                     ) -> list[list[tuple[list[int], list[float]]]]:
    """The transcript once per row (up to `<facts>`), then the facts once in each order: the
    rows × orders, each given its transcript, `<facts>`, its row's relation prompt (if any)
    and its order's token (None: no token), as one left-padded batch. Returns, per row and
    order, the tokens after the decoder prompt (as one pass would have written them) and their
    log-probabilities (0 for the forced ones)."""
    import torch

    prompt = list(model.config.decoder_prompt)
    rows = memory.shape[0]
    heard, heard_scores = greedy_decode(
        model, memory, memory_mask, torch.tensor([prompt] * rows, device=memory.device),
        budgets, stop=facts)
    for b in range(rows):  # the transcript alone: `<facts>` is given with each order
        if heard[b] and heard[b][-1] == facts:
            heard[b], heard_scores[b] = heard[b][:-1], heard_scores[b][:-1]
    given = [heard[b] + [facts] + (prompts[b] if prompts else []) + ([] if o is None else [o])
             for b in range(rows) for o in order_ids]
    width = max(len(g) for g in given)
    eos, limit = model.config.whisper["eos_token_id"], model.decoder.max_target_positions
    pads = [width - len(g) for g in given]  # each row left-padded to the longest
    padded = [[eos] * pad + prompt + g for pad, g in zip(pads, given, strict=True)]
    real = [[False] * pad + [True] * (len(prompt) + len(g))
            for pad, g in zip(pads, given, strict=True)]
    k = len(order_ids)
    facts_budgets = [max(0, min(budgets[i // k] - len(g), limit - len(prompt) - len(g)))
                     for i, g in enumerate(given)]
    said, said_scores = greedy_decode(
        model, memory.repeat_interleave(k, 0), memory_mask.repeat_interleave(k, 0),
        torch.tensor(padded, device=memory.device), facts_budgets,
        torch.tensor(real, device=memory.device))
    return [[(given[b * k + j] + said[b * k + j],
              heard_scores[b] + [0.0] * (len(given[b * k + j]) - len(heard[b])) +
              said_scores[b * k + j]) for j in range(k)]
            for b in range(rows)]
