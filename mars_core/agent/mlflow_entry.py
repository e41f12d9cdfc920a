"""The code MLflow logs with the student's model ("models from code"): loading a version runs
this file to get the model object. Nothing in MARS imports it."""

import mlflow

from mars_core.agent.mlflow_model import StudentModel

mlflow.models.set_model(StudentModel())
