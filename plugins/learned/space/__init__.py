"""Concept spaces learned by lcm: an encoder and its decoder trained together (``train_space``)."""
