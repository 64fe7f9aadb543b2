"""Flax Linen: one adapter base (`_adapter`) and one file per model."""
