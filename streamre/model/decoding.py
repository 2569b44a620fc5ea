"""Guards of greedy decoding that need no model: where a looping output should be cut."""

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
