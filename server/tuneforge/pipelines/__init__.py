"""Pipelines (core): ordered stages (train, eval, preferences, gguf), each stage's model the previous one's output.

`spec.py` is the pipeline file's schema and reading (errors name the file, line and field), `stages.py`
what each stage reads (the config a train stage runs with, the model the previous stage left), `driver.py`
the detached process that advances the stages (`python -m tuneforge.pipelines.driver ID`).
"""
