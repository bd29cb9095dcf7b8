"""Training and evaluation under subject-independent cross-validation (used by smile_point.py)."""
