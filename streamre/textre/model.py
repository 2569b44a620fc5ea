"""A joint entity and relation extractor for written text, on a pretrained BERT-style encoder.

Two ideas from the text relation-extraction papers this project started from, in our own form:
- token-label cross-attention (CMAN): every token attends over learned embeddings of the entity
  types, and over those of the relation types, giving an entity view and a relation view of
  the sentence;
- cross-task attention (SINET): each view then attends over the other, so what the relation
  view found informs the entity tags and the other way round.
Entities are BIO tags over word pieces (entity view). A relation is classified for each
ordered pair of entities from the two spans, the words between them and the entities' types
(relation view), with "none" as a class.

`TextREModel` is a transformers `PreTrainedModel`: `save_pretrained` / `from_pretrained`
folders (or hub ids), the encoder's own config nested in ours.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertModel, PretrainedConfig, PreTrainedModel

TYPE_DIM = 32  # the entity-type embedding beside each span of a pair


class TextREConfig(PretrainedConfig):
    model_type = "streamre-textre"

    def __init__(self, encoder: dict | None = None, entity_types: list[str] | None = None,
                 relation_types: list[str] | None = None, attention_heads: int = 4,
                 dropout: float = 0.1, max_pieces: int = 256, min_confidence: float = 0.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder or BertConfig(hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2,
                                             intermediate_size=64).to_dict()
        self.entity_types = list(entity_types or ["Peop", "Org", "Loc", "Other"])
        self.relation_types = list(relation_types or [
            "Work_For", "Kill", "OrgBased_In", "Live_In", "Located_In"])
        self.attention_heads = attention_heads
        self.dropout = dropout
        self.max_pieces = max_pieces
        # The least probability a fact is read with, chosen on dev by `train-text` (0: any
        # that beats "none"); below it, a reader's guesses cost more precision than they add.
        self.min_confidence = min_confidence

    @property
    def tags(self) -> list[str]:
        """O, then B- and I- for each entity type."""
        return ["O"] + [f"{p}-{t}" for t in self.entity_types for p in ("B", "I")]


class _CrossAttention(nn.Module):
    """x attends over `memory`; residual and layer norm."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                memory_padding: torch.Tensor | None = None) -> torch.Tensor:
        attended, _ = self.attention(x, memory, memory, key_padding_mask=memory_padding,
                                     need_weights=False)
        return self.norm(x + attended)


class TextREModel(PreTrainedModel):
    config_class = TextREConfig
    base_model_prefix = "textre"

    def __init__(self, config: TextREConfig) -> None:
        super().__init__(config)
        self.encoder = BertModel(BertConfig(**config.encoder), add_pooling_layer=False)
        dim, heads, p = self.encoder.config.hidden_size, config.attention_heads, config.dropout
        n_types, n_relations = len(config.entity_types), len(config.relation_types)
        self.entity_labels = nn.Parameter(torch.randn(n_types, dim) * 0.02)
        self.relation_labels = nn.Parameter(torch.randn(n_relations, dim) * 0.02)
        self.tokens_to_entity_labels = _CrossAttention(dim, heads, p)
        self.tokens_to_relation_labels = _CrossAttention(dim, heads, p)
        self.entity_from_relation = _CrossAttention(dim, heads, p)
        self.relation_from_entity = _CrossAttention(dim, heads, p)
        self.dropout = nn.Dropout(p)
        self.tagger = nn.Linear(dim, len(config.tags))
        self.entity_type = nn.Embedding(n_types, TYPE_DIM)
        self.pair = nn.Sequential(nn.Linear(3 * dim + 2 * TYPE_DIM, dim), nn.GELU(),
                                  nn.Dropout(p), nn.Linear(dim, 1 + n_relations))
        self.post_init()

    def views(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The entity view and the relation view of every word piece: (B, L, D) each."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        batch = hidden.shape[0]
        entity = self.tokens_to_entity_labels(hidden, self.entity_labels.expand(batch, -1, -1))
        relation = self.tokens_to_relation_labels(
            hidden, self.relation_labels.expand(batch, -1, -1))
        padding = attention_mask == 0
        return (self.entity_from_relation(entity, relation, padding),
                self.relation_from_entity(relation, entity, padding))

    def tag_logits(self, entity_view: torch.Tensor) -> torch.Tensor:
        return self.tagger(self.dropout(entity_view))

    def pair_logits(self, relation_view: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Relation logits (P, 1 + relations) for pairs given as rows of (batch index, head
        start, head end, head type, tail start, tail end, tail type), word-piece ends
        exclusive; class 0 is "no relation"."""
        if pairs.numel() == 0:
            return relation_view.new_zeros(0, 1 + len(self.config.relation_types))
        b = pairs[:, 0]
        length = relation_view.shape[1]
        positions = torch.arange(length, device=pairs.device)[None, :]

        def mean_over(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
            mask = (positions >= start[:, None]) & (positions < end[:, None])
            weights = mask.to(relation_view.dtype)
            pooled = torch.bmm(weights[:, None, :], relation_view[b]).squeeze(1)
            return pooled / weights.sum(1, keepdim=True).clamp(min=1)

        head = mean_over(pairs[:, 1], pairs[:, 2])
        tail = mean_over(pairs[:, 4], pairs[:, 5])
        between = mean_over(torch.minimum(pairs[:, 2], pairs[:, 5]),
                            torch.maximum(pairs[:, 1], pairs[:, 4]))  # empty when adjacent
        features = torch.cat([head, tail, between, self.entity_type(pairs[:, 3]),
                              self.entity_type(pairs[:, 6])], dim=-1)
        return self.pair(self.dropout(features))


def from_encoder(encoder: BertModel, entity_types: list[str], relation_types: list[str],
                 **config) -> TextREModel:
    """A new extractor around a pretrained encoder, its weights copied in."""
    model = TextREModel(TextREConfig(encoder.config.to_dict(), entity_types, relation_types,
                                     **config))
    missing, unexpected = model.encoder.load_state_dict(encoder.state_dict(), strict=False)
    if unexpected or [k for k in missing if "pooler" not in k]:
        raise ValueError(f"the encoder's weights do not fit: missing {missing}, "
                         f"unexpected {unexpected}")
    return model
