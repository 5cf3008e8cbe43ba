"""Offline training: configs, data pipeline, trainer, metrics and experiments."""
