"""The model runtime: the scoring code packaged with every registered model version.

``ml/pyfunc.py`` copies this folder into each version's artifacts; ``core.model_runtime`` imports that
copy under a module name unique to the model directory, so the promotion gate, Spark workers and
``mlflow.pyfunc.load_model`` all run the code a version was trained with, whatever ``ml/`` holds today.
Rules: relative imports only, nothing from the platform (``core``, ``jobs``, other ``ml`` modules), only
numpy, pandas and (for Keras models) TensorFlow.
"""
