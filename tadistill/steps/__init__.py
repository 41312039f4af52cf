"""The run's steps, one module per stage: what each step of the plan (plan.py) does, reading and
writing the run directory through the context the pipeline hands it. They sit above the stage
packages they use (corpus, teacher, signals, train), so no stage imports a step or another
stage's steps."""
