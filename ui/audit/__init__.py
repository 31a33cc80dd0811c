"""The auditor's views: filtered records, one inspection in full, verify and export."""
