"""The witness: signed checkpoints of the chain head, cosigned outside the station."""
