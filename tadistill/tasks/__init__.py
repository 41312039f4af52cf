"""Answer types, prompts, and answer extraction."""
