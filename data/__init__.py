"""Data side of the toolkit: landmark files, D-Markers, datasets, folds, clips and the demo set."""
