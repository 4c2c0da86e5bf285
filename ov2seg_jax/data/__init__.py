"""Datasets: readers of the usual local layouts and input pipelines."""
