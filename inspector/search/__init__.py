"""Search the inspection history by text and by example (issue 17).

Vectors live in a side file beside the station database (`station.db.search`): a recomputable
cache, not a record, so it is neither chained nor migrated with the record tables.
"""
