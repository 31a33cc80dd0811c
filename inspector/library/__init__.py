"""The defect-description library: labels, the versioned store, staged drafts, impact preview."""
