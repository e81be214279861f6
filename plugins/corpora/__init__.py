"""Tasks that export corpora shipped inside registry packages as JSONL for ``prepare``."""
