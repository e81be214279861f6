"""Residual vector quantisation of concept vectors (the codebooks of Quant-LCM)."""
