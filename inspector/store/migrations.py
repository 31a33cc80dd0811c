"""The station database's schema: the versioned migrations, applied in order by open_database.

A migration's name is stored in every database it ran on: never rename or edit one; a schema change
is a new migration at the end. Migrations run inside open_database's write transaction and hold no
station key, so a step that must write chained rows (seal_credentials) runs there, after them.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

_TABLES = [
    "CREATE TABLE chain (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, row_id INTEGER NOT NULL, ts TEXT NOT NULL,"
    " prev_hash TEXT NOT NULL, hash TEXT NOT NULL, UNIQUE (tbl, row_id)) STRICT",
    "CREATE TABLE library_versions (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, name TEXT NOT NULL,"
    " description TEXT NOT NULL, user TEXT NOT NULL, reason TEXT NOT NULL) STRICT",
    "CREATE TABLE library_labels (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL,"
    " version INTEGER NOT NULL REFERENCES library_versions(id), label_id TEXT NOT NULL, position INTEGER NOT NULL,"
    " name TEXT NOT NULL, disposition TEXT NOT NULL, severity INTEGER NOT NULL, threshold REAL, scope TEXT NOT NULL,"
    " retired INTEGER NOT NULL, UNIQUE (version, label_id)) STRICT",
    "CREATE TABLE library_descriptions (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL,"
    " version INTEGER NOT NULL REFERENCES library_versions(id), label_id TEXT NOT NULL, position INTEGER NOT NULL,"
    " text TEXT NOT NULL, retired INTEGER NOT NULL, UNIQUE (version, label_id, text)) STRICT",
    "CREATE TABLE users (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, name TEXT NOT NULL,"
    " version INTEGER NOT NULL, role TEXT NOT NULL, printed_name TEXT NOT NULL, active INTEGER NOT NULL,"
    " changed_by TEXT, reason TEXT NOT NULL,"
    " UNIQUE (name, version)) STRICT",
    # Secrets stay out of the chain and out of exports; password changes are chained as events.
    "CREATE TABLE credentials (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, user_name TEXT NOT NULL,"
    " encoded TEXT NOT NULL) STRICT",
    "CREATE TABLE inspections (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, user TEXT NOT NULL,"
    " captured_at TEXT NOT NULL, source_id TEXT NOT NULL, frame_seq INTEGER NOT NULL, origin TEXT NOT NULL,"
    " width INTEGER NOT NULL, height INTEGER NOT NULL, image_sha256 TEXT, frame_sha256 TEXT NOT NULL,"
    " model_id TEXT NOT NULL, library_version INTEGER NOT NULL REFERENCES library_versions(id),"
    " candidates TEXT NOT NULL, top_label_id TEXT NOT NULL, disposition TEXT NOT NULL, needs_review INTEGER NOT NULL,"
    " open_set INTEGER NOT NULL, verdict_reason TEXT NOT NULL, timings TEXT NOT NULL) STRICT",
    "CREATE TABLE decisions (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL,"
    " inspection_id INTEGER NOT NULL REFERENCES inspections(id), kind TEXT NOT NULL, label_id TEXT,"
    " picked_rank INTEGER, typed_description TEXT NOT NULL, comment TEXT NOT NULL, operator TEXT NOT NULL,"
    " role TEXT NOT NULL, printed_name TEXT NOT NULL, decided_at TEXT NOT NULL, override INTEGER NOT NULL,"
    " corrects_id INTEGER REFERENCES decisions(id), corrects_hash TEXT, reason TEXT NOT NULL) STRICT",
    "CREATE TABLE events (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, kind TEXT NOT NULL, user TEXT,"
    " subject TEXT NOT NULL, detail TEXT NOT NULL) STRICT",
    # A cache, not a record: recomputable, so it may be replaced and is not chained.
    "CREATE TABLE embeddings (model_id TEXT NOT NULL, text TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,"
    " PRIMARY KEY (model_id, text)) STRICT",
    "CREATE INDEX chain_ts ON chain (ts)",
    "CREATE INDEX inspections_time ON inspections (recorded_at)",
    "CREATE INDEX decisions_time ON decisions (recorded_at)",
    "CREATE INDEX decisions_inspection ON decisions (inspection_id)",
    # One first answer per inspection; every later change is a correction row.
    "CREATE UNIQUE INDEX decisions_first ON decisions (inspection_id) WHERE corrects_id IS NULL",
    "CREATE INDEX events_time ON events (recorded_at)",
    "CREATE INDEX events_subject ON events (subject, kind)",
    "CREATE INDEX users_name ON users (name, version)",
    "CREATE INDEX credentials_user ON credentials (user_name, id)",
    "CREATE TRIGGER chain_gapless BEFORE INSERT ON chain"
    " WHEN NEW.seq <> (SELECT IFNULL(MAX(seq), 0) + 1 FROM chain)"
    " BEGIN SELECT RAISE(ABORT, 'chain seq must follow the head'); END",
]


def _append_only(tables: tuple[str, ...]) -> list[str]:
    return [
        f"CREATE TRIGGER {t}_no_{verb.lower()} BEFORE {verb} ON {t}"
        f" BEGIN SELECT RAISE(ABORT, '{t} is append-only: a change is a new row'); END"
        for t in tables
        for verb in ("UPDATE", "DELETE")
    ]


# The record tables of the first schema, spelled out: RECORD_TABLES grows with later migrations,
# whose tables do not exist yet when 0001 runs on a new database; each migration guards its own.
_INITIAL_RECORDS = (
    "library_versions",
    "library_labels",
    "library_descriptions",
    "users",
    "inspections",
    "decisions",
    "events",
)
_TRIGGERS = _append_only((*_INITIAL_RECORDS, "chain", "credentials"))
# The model registry (inspector.learning.registry): a model row once, then its state changes as new rows.
_REGISTRY = [
    "CREATE TABLE model_registry (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL, model_id TEXT NOT NULL UNIQUE,"
    " parent_id TEXT, data_hash TEXT NOT NULL, recipe TEXT NOT NULL, figures TEXT NOT NULL, checkpoint TEXT NOT NULL,"
    " user TEXT NOT NULL, reason TEXT NOT NULL) STRICT",
    "CREATE TABLE model_states (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL,"
    " model_id TEXT NOT NULL REFERENCES model_registry(model_id),"
    " state TEXT NOT NULL CHECK (state IN ('candidate', 'active', 'retired')), user TEXT NOT NULL,"
    " reason TEXT NOT NULL) STRICT",
    "CREATE INDEX model_states_model ON model_states (model_id, id)",
]

MIGRATIONS = Migrations("inspector")


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    # One statement at a time: executescript() would COMMIT the surrounding transaction.
    for statement in _TABLES + _TRIGGERS:
        db.execute(statement)


@MIGRATIONS(name="0002_frame_index")
def _frame_index(db: Database) -> None:
    # A watched folder asks "was this file already inspected?" for every file in its backlog.
    db.execute("CREATE INDEX inspections_frame ON inspections (frame_sha256)")


@MIGRATIONS(name="0003_model_registry")
def _model_registry(db: Database) -> None:
    for statement in _REGISTRY + _append_only(("model_registry", "model_states")):
        db.execute(statement)


@MIGRATIONS(name="0004_chain_mac")
def _chain_mac(db: Database) -> None:
    # Entries from here on carry an HMAC with the station key (chain.entry_mac): rows added around the
    # application need the key. Older entries stay as they are, covered by the hashes chained after them.
    db.execute("ALTER TABLE chain ADD COLUMN mac TEXT")


@MIGRATIONS(name="0005_embedding_mac")
def _embedding_mac(db: Database) -> None:
    # The cache is outside the chain but changes every ranking: each row is MAC'ed with the station key
    # (inspector.library.store), and a row without a valid MAC is a cache miss, recomputed.
    db.execute("ALTER TABLE embeddings ADD COLUMN mac TEXT")


@MIGRATIONS(name="0006_credential_seals")
def _credential_seals(db: Database) -> None:
    # The seals themselves are chained events, written by seal_credentials() right after this runs:
    # chain entries need the station key, which migrations do not hold.
    pass


@MIGRATIONS(name="0007_scoring_configs")
def _scoring_configs(db: Database) -> None:
    # How each inspection's scores were made (inspector.frame.scoring.ScoringConfig). A side table, not a
    # column: the chain hashes whole inspections rows, so a new column would change every old row's hash.
    # The config row is content-addressed (id = SHA-256 of its canonical JSON), so it verifies itself.
    db.execute(
        "CREATE TABLE scoring_configs (id TEXT PRIMARY KEY, recorded_at TEXT NOT NULL, json TEXT NOT NULL) STRICT"
    )
    db.execute(
        "CREATE TABLE inspection_scoring (inspection_id INTEGER PRIMARY KEY REFERENCES inspections(id),"
        " scoring_config_id TEXT NOT NULL REFERENCES scoring_configs(id)) STRICT"
    )


@MIGRATIONS(name="0008_library_examples")
def _library_examples(db: Database) -> None:
    # Library format 2: example images of a label, named by the SHA-256 of the stored PNG, one row
    # per (version, label, image) like library_descriptions (inspector.library.examples).
    db.execute(
        "CREATE TABLE library_examples (id INTEGER PRIMARY KEY, recorded_at TEXT NOT NULL,"
        " version INTEGER NOT NULL REFERENCES library_versions(id), label_id TEXT NOT NULL,"
        " position INTEGER NOT NULL, sha256 TEXT NOT NULL, reason TEXT NOT NULL, box TEXT NOT NULL,"
        " retired INTEGER NOT NULL, UNIQUE (version, label_id, sha256)) STRICT"
    )
    for statement in _append_only(("library_examples",)):
        db.execute(statement)


@MIGRATIONS(name="0009_line_outbox")
def _line_outbox(db: Database) -> None:
    # Delivery state, not a record (so not chained, and updated in place): per line output, the
    # chain seq up to which the broker or PLC has acknowledged every inspection and decision.
    db.execute(
        "CREATE TABLE line_outbox (output TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at TEXT NOT NULL) STRICT"
    )


@MIGRATIONS(name="0010_user_row_seals")
def _user_row_seals(db: Database) -> None:
    # Sign-in checks the account's users row against its MAC'd chain entry (inspector.store.row_seal);
    # rows chained before 0004_chain_mac have none, so open_database seals them right after this runs
    # with chained `user_row_sealed` events (they need the station key, which migrations do not hold).
    pass


@MIGRATIONS(name="0011_model_config_ids")
def _model_config_ids(db: Database) -> None:
    # Model ids now cover the weights and the sidecar's configuration (models.model_id). The legacy ids
    # that records and registry rows name are bound to the new ones by chained events, written by
    # inspector.store.model_aliases.bind_legacy_ids() right after this runs (it needs the station key).
    pass


@MIGRATIONS(name="0012_events_kind_index")
def _events_kind_index(db: Database) -> None:
    # The station asks for the latest event of a kind on every library poll (the good-part model in
    # force, inspector.learning.good_model); without this index that is a scan of every event.
    db.execute("CREATE INDEX events_kind ON events (kind, id)")


@MIGRATIONS(name="0013_inspection_products")
def _inspection_products(db: Database) -> None:
    # Issue 17: the product each inspection is of (line trigger or [camera] product_id), for the report's
    # and the drift watch's per-product spread. A side table, not a column (the chain hashes whole
    # inspections rows); append-only. A line-triggered part's product is also in its chained part event.
    db.execute(
        "CREATE TABLE inspection_products (inspection_id INTEGER PRIMARY KEY REFERENCES inspections(id),"
        " product_id TEXT NOT NULL) STRICT"
    )
    db.execute("CREATE INDEX inspection_products_product ON inspection_products (product_id, inspection_id)")
    for statement in _append_only(("inspection_products",)):
        db.execute(statement)
