"""What every view is given: the station (core), the signed-in user, the configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inspector.config import StationConfig
from inspector.station import Station
from inspector.store.users import MATRIX, Session

if TYPE_CHECKING:
    from ui.model_follower import ModelFollower


@dataclass
class AppContext:
    station: Station  # .log (DecisionLog), .index (library in force), .scorer, .inspect(), .record()
    config: StationConfig
    user: Session | None = None
    # The window's one ModelFollower (switches the station to the registry's active model); a view
    # used on its own (tests, screenshots) makes its own when this is None.
    follower: ModelFollower | None = None
    # issue 17: the drift watch (inspector.drift.watch.DriftWatch) when the app started one; QA shows its banner.
    drift: Any = None
    # The line's outputs (inspector.line.outputs.LineOutputs) when the station has any; the status shows them.
    line: Any = None

    def refresh_library(self) -> bool:
        """Pick up a newly published library version; through the follower when there is one, so every
        view following its `library_changed` (the operator's footer, the status bar) shows it."""
        if self.follower is not None:
            return self.follower.refresh_library()
        return self.station.refresh_library()

    def can(self, permission: str) -> bool:
        """Whether the signed-in user's role has `permission` (the core enforces it regardless)."""
        return self.user is not None and permission in MATRIX.get(self.user.role, frozenset())
