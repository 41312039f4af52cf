"""The three signals, their combination, each round's selection and trust weights."""
