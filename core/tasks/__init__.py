"""Built-in tasks: what a recipe's ``task:`` runs."""
