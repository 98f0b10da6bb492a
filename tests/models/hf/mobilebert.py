"""A transformers model built from its config, as ELUE's guide writes model files (mobilebert.py)."""

from transformers import MobileBertConfig, MobileBertForSequenceClassification

entire_model = MobileBertForSequenceClassification(MobileBertConfig(num_labels=2)).eval()
