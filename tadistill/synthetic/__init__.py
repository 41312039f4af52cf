"""The embedded default: a synthetic reasoning task, a simulated teacher, tiny models."""
