"""Prefect flows: each composes the Hydra config, checks its inputs, wires tasks and logs to
MLflow. Importing this package does nothing: `python -m flows.<name>` sets the process up
explicitly (`mars_core.app.cli.answer_early`, the module's first statement, then `main`).
"""
