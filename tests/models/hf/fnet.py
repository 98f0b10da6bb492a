"""A transformers model built from its config, as ELUE's guide writes model files (fnet.py)."""

from transformers import FNetConfig, FNetForSequenceClassification

entire_model = FNetForSequenceClassification(
    FNetConfig(num_labels=2, use_tpu_fourier_optimizations=False)
).eval()
