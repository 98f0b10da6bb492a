"""Breaks while building its model: the traceback must reach the owner."""

from torch import nn


def build() -> nn.Module:
    raise RuntimeError("boom while building the model")


entire_model = build()
