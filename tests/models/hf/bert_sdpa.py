"""BERT-base from transformers' config (ELUE's guide style): BertForSequenceClassification."""

from transformers import BertConfig, BertForSequenceClassification

config = BertConfig(num_labels=2)
entire_model = BertForSequenceClassification(config).eval()
