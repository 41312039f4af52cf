"""The three signals, their combination, stage-2 selection and trust weights."""
