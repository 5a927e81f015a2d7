"""The segmenter: teacher, LSTM student, evaluation, registration and the promotion gate. Imports only
``core``, never Spark; ``ml/runtime/`` is the part packaged with every registered model version.
"""
