"""Layers: TimeDistributed, ConvLSTM, Stateful and a from-scratch LSTM cell."""

from .time_distributed import TimeDistributed

__all__ = ["TimeDistributed"]
