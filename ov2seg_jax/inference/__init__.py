"""Video inference: frame reading, the windowed predictor with tracking, results writing."""
