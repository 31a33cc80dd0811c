"""The per-frame path: decode, score, rank, explain, and the records that flow through it."""
