"""BERT-small (Turc et al.: 4 layers, hidden 512, 8 heads) built from its transformers config, as
ELUE's guide writes model files; the pre-flight timing check uses it (docs/cost.md)."""

from transformers import BertConfig, BertForSequenceClassification

config = BertConfig(
    hidden_size=512,
    num_hidden_layers=4,
    num_attention_heads=8,
    intermediate_size=2048,
    num_labels=2,
)
config._attn_implementation = "eager"
entire_model = BertForSequenceClassification(config).eval()
