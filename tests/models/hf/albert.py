"""A transformers model built from its config, as ELUE's guide writes model files (albert.py)."""

from transformers import AlbertConfig, AlbertForSequenceClassification

entire_model = AlbertForSequenceClassification(
    AlbertConfig(
        num_labels=2,
        hidden_size=768,
        num_attention_heads=12,
        intermediate_size=3072,
        embedding_size=128,
    )
).eval()
