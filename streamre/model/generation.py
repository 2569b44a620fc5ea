"""Greedy generation for the aligned model (`MCAMModel` inherits it): from speech, in every
element order, or from text. The decoding itself, with its guards, is
`streamre.model.decoding`; this part gives it the model's memory and each segment's budget."""

from __future__ import annotations

import torch

from streamre import SAMPLE_RATE
from streamre.model.decoding import decode_in_orders, greedy_decode
from streamre.whisper.decoding import token_budget
from streamre.model.relation_heads import RelationPrompt


class Generation:
    """Mixed into `MCAMModel`: needs its `memory`, `speech_features`, `aligned`,
    `relation_heads`, `decoder` and `config`."""

    def budgets(self, attention_mask: torch.Tensor, max_new_tokens: int) -> list[int]:
        """How many tokens each segment may write after the prompt (`token_budget`, and no
        more than the decoder's positions leave)."""
        seconds = attention_mask.sum(-1).float() / SAMPLE_RATE
        room = self.decoder.max_target_positions - len(self.config.decoder_prompt)
        return [min(room, token_budget(s, max_new_tokens))
                for s in seconds.tolist()]

    @torch.inference_mode()
    def generate_tokens(self, input_values: torch.Tensor, attention_mask: torch.Tensor,
                        max_new_tokens: int = 192) -> tuple[list[list[int]], list[list[float]]]:
        """Greedy, batched decoding of speech after the decoder prompt (`greedy_decode`), to
        each segment's budget. Returns each segment's tokens up to, not including, the end
        token, and their log-probabilities."""
        memory, memory_mask = self.memory((input_values, attention_mask))
        prompt = torch.tensor([self.config.decoder_prompt] * memory.shape[0],
                              device=memory.device)
        return greedy_decode(self, memory, memory_mask, prompt,
                             self.budgets(attention_mask, max_new_tokens))

    @torch.inference_mode()
    def generate_in_orders(self, input_values: torch.Tensor, attention_mask: torch.Tensor,
                           order_ids: list[int | None], facts: int, max_new_tokens: int = 192,
                           prompt: RelationPrompt | None = None
                           ) -> list[list[tuple[list[int], list[float]]]]:
        """Each segment's transcript, then its facts after each order token of `order_ids`
        (None: none) and, with relation heads, the `prompt` of the relations they heard
        (`decode_in_orders`); `facts` is `<facts>`'s id."""
        heard = None
        if self.relation_heads is None:
            memory, memory_mask = self.memory((input_values, attention_mask))
        elif prompt is None:
            raise ValueError("this model has relation heads: give their RelationPrompt")
        else:
            hidden, mask = self.speech_features(input_values, attention_mask)
            memory, memory_mask = self.aligned(hidden, mask)
            heard = prompt.chosen(self.relation_heads(hidden, mask))
        return decode_in_orders(self, memory, memory_mask, self.budgets(
            attention_mask, max_new_tokens), order_ids, facts, heard)

    @torch.inference_mode()
    def generate_from_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           prompt: torch.Tensor, max_new_tokens: int = 192
                           ) -> tuple[list[list[int]], list[list[float]]]:
        """Greedy decoding from text alone (a model that reads text) after `prompt` (B, P):
        the decoder prompt, the text as the transcript and `<facts>`."""
        memory, memory_mask = self.memory(None, (input_ids, attention_mask))
        room = self.decoder.max_target_positions - prompt.shape[1]
        if room < 1:
            raise ValueError("the text is longer than the decoder's positions")
        budgets = [min(max_new_tokens, room)] * prompt.shape[0]
        return greedy_decode(self, memory, memory_mask, prompt, budgets)
