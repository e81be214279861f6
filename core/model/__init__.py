"""Concept Transformer, heads and checkpoints."""
