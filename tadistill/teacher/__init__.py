"""The teacher: OpenAI-compatible calls with a response cache and a hard budget."""
