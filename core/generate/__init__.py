"""Autoregressive generation of concepts."""
