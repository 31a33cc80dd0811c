"""The station database: schema, hash chain, decision log, accounts, audit queries, exports."""
