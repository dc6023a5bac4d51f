"""Data, features, candidate models, evaluation and the model artifact of the gender classifier."""
