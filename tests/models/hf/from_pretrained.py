"""A transformers model built from its config, as ELUE's guide writes model files (from_pretrained.py)."""

from transformers import AutoModelForSequenceClassification

entire_model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased").eval()
