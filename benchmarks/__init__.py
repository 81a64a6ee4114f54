"""make bench: what the agents cost; measure.py measures, report.py writes what it found."""
