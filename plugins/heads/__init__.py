"""Built-in prediction heads."""
