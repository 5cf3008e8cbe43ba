"""Structured pruning with fine-tuning (`ssma-prune`), and scoring of exported bundles."""
