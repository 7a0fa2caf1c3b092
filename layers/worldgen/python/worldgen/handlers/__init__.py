"""Lambda entry logic, Powertools-wired. ``functions/<name>/app.py`` are thin adapters over these."""
