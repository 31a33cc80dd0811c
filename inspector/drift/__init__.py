"""Drift alarms (issue 17): per-window statistics of the parts against a reference window."""
