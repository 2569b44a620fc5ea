"""The decoding guards hearing and the aligned model share, which need no model: the token
budget by duration and the repeated-tail check."""

from __future__ import annotations

# A sentence of speech is 2-4 tokens a second; a segment may write this many, plus a fixed
# allowance for short ones, before the cap calls it a loop.
TOKENS_PER_SECOND = 10
TOKENS_ALLOWANCE = 24


def token_budget(seconds: float, max_new_tokens: int) -> int:
    """The most tokens a segment of `seconds` may be answered with: generous for speech, a cap
    for a looping decoder."""
    return max(1, min(max_new_tokens, int(TOKENS_ALLOWANCE + TOKENS_PER_SECOND * seconds)))


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
