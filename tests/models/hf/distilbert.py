"""A transformers model built from its config, as ELUE's guide writes model files (distilbert.py)."""

from transformers import DistilBertConfig, DistilBertForSequenceClassification

entire_model = DistilBertForSequenceClassification(DistilBertConfig(num_labels=2)).eval()
