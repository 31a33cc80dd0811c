"""A station for the good-part model and example-row tests: a scorer whose good parts (red < 100)
embed near one direction, each a little apart, and defects elsewhere; QA, operator and admin users."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fakes import HashScorer, text_vector
from inspector.config import DatabaseConfig, LibraryConfig, StationConfig
from inspector.frame.records import Decision, Frame
from inspector.library.labels import seed_library_dir
from inspector.station import Station


class NoisyScorer(HashScorer):
    """Good parts (red < 100) embed near one direction, each a little apart; defects (red >= 100) elsewhere."""

    def embed_images(self, images):
        out = []
        for im in images:
            red = int(im[0, 0, 0])
            base = text_vector("good surface" if red < 100 else "cracked surface", self.dim)
            noise = np.random.default_rng(red).normal(size=self.dim).astype(np.float32) * 0.03
            v = base + noise
            out.append(v / np.linalg.norm(v))
        return np.stack(out)


def open_station(tmp_path: Path) -> Station:
    config = StationConfig(
        library=LibraryConfig(str(seed_library_dir() / "generic_surfaces.yaml")),
        database=DatabaseConfig(str(tmp_path / "s.db")),
    )
    st = Station.open(config, scorer=NoisyScorer(dim=64))
    log = st.log
    log.users.create_first_admin("admin", "Admin-pass-1234")
    admin = log.login("admin", "Admin-pass-1234")
    log.users.add_user("qa", "qa", "Qa-pass-123456", admin, temporary=False)
    log.users.add_user("op", "operator", "Op-pass-1234567", admin, temporary=False)
    return st


def part_frame(red: int, seq: int) -> Frame:
    rgb = np.full((12, 12, 3), 40, np.uint8)
    rgb[0, 0, 0] = red
    rgb[5, 5, 1] = seq % 251  # distinct images, distinct hashes
    return Frame(rgb, datetime.now(UTC), "cam", seq)


def confirm_part(st: Station, red: int, seq: int, label: str, user) -> int:
    result = st.record(st.inspect(part_frame(red, seq)), user)
    rank = next(c.rank for c in result.ranking.candidates if c.label_id == label)
    kind = "confirm" if rank == 1 else "pick"
    st.log.record_decision(Decision(result.inspection_id, kind, user.name, label, rank), user)
    return result.inspection_id
