"""Evaluation metrics and reports."""
