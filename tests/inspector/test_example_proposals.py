"""An operator proposes a logged part as an example; only QA turns it into a library change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from fakes import HashScorer
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.errors import LibraryError
from inspector.frame.records import Frame
from inspector.library.draft import publish
from inspector.library.labels import seed_library_dir
from inspector.library.proposals import example_from_inspection, open_proposals, propose_example, settle_proposal
from inspector.station import Station
from inspector.store.users import AccessDenied


def test_operator_proposes_qa_accepts(tmp_path: Path) -> None:
    config = StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )
    with Station.open(config, scorer=HashScorer(dim=64)) as st:
        log = st.log
        log.users.create_first_admin("admin", "Admin-pass-1234")
        admin = log.login("admin", "Admin-pass-1234")
        log.users.add_user("qa", "qa", "Qa-pass-123456", admin, temporary=False)
        log.users.add_user("op", "operator", "Op-pass-1234567", admin, temporary=False)
        qa, op = log.login("qa", "Qa-pass-123456"), log.login("op", "Op-pass-1234567")
        rgb = np.full((10, 10, 3), 60, np.uint8)
        inspection = st.record(st.inspect(Frame(rgb, datetime.now(UTC), "cam", 1)), op).inspection_id
        with pytest.raises(LibraryError, match="does not exist"):
            propose_example(log, 999, "dent", "a dent", op)
        pid = propose_example(log, inspection, "dent", "clear dent, left side", op)
        assert log.library.current_version() == 1  # a proposal changes nothing
        [proposal] = open_proposals(log)
        assert (proposal["id"], proposal["inspection_id"], proposal["label_id"], proposal["user"]) == (
            pid,
            inspection,
            "dent",
            "op",
        )
        edit = example_from_inspection(log, proposal["inspection_id"], proposal["label_id"], proposal["reason"])
        with pytest.raises(AccessDenied):
            publish(log.library, 1, [edit], op)  # the operator alone cannot change the library
        with pytest.raises(AccessDenied):
            settle_proposal(log, pid, True, op)
        assert publish(log.library, 1, [edit], qa) == 2
        settle_proposal(log, pid, True, qa)
        assert open_proposals(log) == []
        assert log.library.library(2).label("dent").examples[0].sha256 == log.inspection(inspection)["image_sha256"]
