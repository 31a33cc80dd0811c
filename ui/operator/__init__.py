"""The operator's screen and what feeds it: candidates, evidence, verdict, capture worker."""
