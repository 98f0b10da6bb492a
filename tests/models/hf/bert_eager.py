"""A transformers model built from its config, as ELUE's guide writes model files (bert_eager.py)."""

from transformers import BertConfig, BertForSequenceClassification

config = BertConfig(num_labels=2)
config._attn_implementation = "eager"
entire_model = BertForSequenceClassification(config).eval()
