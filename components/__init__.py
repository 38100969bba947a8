"""Pure building blocks of aeflow: config, data, corruption, models, training, evaluation, export.

Nothing here imports prefect or mlflow, so every piece can be used, tested and reasoned
about on its own; `flows/` wires them together and adds orchestration and tracking.
"""
