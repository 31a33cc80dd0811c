"""The model registry in the station database: which models exist and which one the station uses.

A model is registered once (model_registry: id = weights SHA-256, parent, data hash, recipe, figures,
checkpoint); its state (candidate / active / retired) is the latest of its model_states rows. Both
tables are append-only and hash-chained, so the registry's whole history verifies with the log.
Promotion and rollback are QA decisions, each one transaction: state rows plus the event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inspector.errors import InspectorError
from inspector.store import model_aliases
from inspector.store.database import event_row
from inspector.store.decision_log import DecisionLog
from inspector.store.users import Session, authorize

STATES = ("candidate", "active", "retired")
# Both held-out sets of the candidate's figures, and the metrics a promotion may not lose on either.
HELDOUT_SETS = ("confirmations", "typed_defects")
PROMOTION_METRICS = ("top1", "mrr")
DEFAULT_TOLERANCE = 0.02  # about one image in fifty on the held-out top-1: below that is noise at station scale


class RegistryError(InspectorError):
    """A registry request names an unknown model or an impossible state change."""


class PromotionRefused(RegistryError):
    """The candidate is worse than the model in use beyond the tolerance, or was not compared with it."""


@dataclass(frozen=True)
class RegisteredModel:
    """A registry entry with its current state."""

    model_id: str
    parent_id: str | None
    data_hash: str
    recipe: dict[str, Any]
    figures: dict[str, Any]
    checkpoint: str
    state: str
    registered_at: str
    registered_by: str
    reason: str


def tolerances_for(tolerance: float, set_tolerances: Mapping[str, float] | None = None) -> dict[str, float]:
    """The allowed drop per held-out set: `tolerance` unless QA set another for a named set.

    Why per set: a plant whose parts are unlike the shipped generic defects loses top-1 on the
    typed-defect set as it learns its own parts (bench.learning_curve: 0.73 -> 0.15-0.29 while the
    plant's held-out confirmations rose 0.63 -> 0.86), so one shared tolerance would refuse every
    useful fine-tune there. QA may then allow a larger drop on that set; the promotion records it.
    """
    allowed = {name: float(tolerance) for name in HELDOUT_SETS}
    for name, value in (set_tolerances or {}).items():
        if name not in allowed:
            raise RegistryError(f"unknown held-out set {name!r}; the sets are {', '.join(HELDOUT_SETS)}")
        allowed[name] = float(value)
    for name, value in allowed.items():
        if not 0.0 <= value <= 1.0:  # also refuses NaN
            raise RegistryError(f"the tolerance for {name} must be between 0 and 1, got {value}")
    return allowed


def promotion_problems(
    figures: Mapping[str, Any], tolerance: float, set_tolerances: Mapping[str, float] | None = None
) -> list[str]:
    """Where the candidate is worse than its baseline beyond the set's tolerance (empty: promotable)."""
    allowed = tolerances_for(tolerance, set_tolerances)
    problems = []
    for name in HELDOUT_SETS:
        cand, base = figures.get("candidate", {}).get(name), figures.get("baseline", {}).get(name)
        if not cand or not base:
            problems.append(f"the figures lack the held-out set {name!r}; fine-tune again to evaluate it")
            continue
        for metric in PROMOTION_METRICS:
            if cand[metric] < base[metric] - allowed[name]:
                problems.append(
                    f"{name} {metric} {cand[metric]:.3f} is below the current model's {base[metric]:.3f}"
                    f" by more than the tolerance {allowed[name]:.3f}"
                )
    return problems


class ModelRegistry:
    """Registered models of one station; writes need the 'promote_model' permission (QA)."""

    def __init__(self, log: DecisionLog) -> None:
        self.log, self.sdb = log, log.sdb

    def list(self) -> list[RegisteredModel]:
        """Every registered model, oldest first, with its current state."""
        rows = self.sdb.db.query(
            "SELECT r.*, (SELECT state FROM model_states s WHERE s.model_id = r.model_id ORDER BY s.id DESC LIMIT 1)"
            " AS state FROM model_registry r ORDER BY r.id"
        )
        return [
            RegisteredModel(
                r["model_id"],
                r["parent_id"],
                r["data_hash"],
                json.loads(r["recipe"]),
                json.loads(r["figures"]),
                r["checkpoint"],
                r["state"],
                r["recorded_at"],
                r["user"],
                r["reason"],
            )
            for r in rows
        ]

    def current_id(self, model_id: str) -> str:
        """The id a registered model has now: a legacy (weights-only) id resolves to the one bound at the upgrade."""
        return model_aliases.resolve(self.sdb.conn, model_id)

    def get(self, model_id: str) -> RegisteredModel:
        """The model with this id (or the id bound to its legacy id), or a unique prefix (8+ hex digits)."""
        prefix = len(model_id) >= 8  # shorter prefixes match too much to name a model safely
        aliases = model_aliases.alias_map(self.sdb.conn)
        found = [
            m
            for m in self.list()
            if model_id in (m.model_id, aliases.get(m.model_id)) or (prefix and m.model_id.startswith(model_id))
        ]
        if len(found) != 1:
            what = "is not registered" if not found else "is ambiguous; give more digits"
            raise RegistryError(f"model {model_id!r} {what}; `inspector model list` shows the registry")
        return found[0]

    def active(self) -> RegisteredModel | None:
        """The model the station uses, or None before anything was registered."""
        return next((m for m in self.list() if m.state == "active"), None)

    def revision(self) -> int:
        """The id of the latest state change (0 before any): a new value means a new QA decision."""
        rows = list(self.sdb.db.query("SELECT MAX(id) AS latest FROM model_states"))
        return int(rows[0]["latest"] or 0)

    def history(self, model_id: str | None = None) -> list[dict[str, Any]]:
        """State-change rows (oldest first), of one model or all."""
        where, params = (" WHERE model_id = ?", [model_id]) if model_id else ("", [])
        return list(self.sdb.db.query("SELECT * FROM model_states" + where + " ORDER BY id", params))

    def register(
        self,
        model_id: str,
        checkpoint: str,
        user: Session,
        *,
        parent_id: str | None,
        data_hash: str,
        recipe: Mapping[str, Any],
        figures: Mapping[str, Any],
        state: str = "candidate",
        reason: str = "fine-tuned candidate",
    ) -> RegisteredModel:
        """Add a model in `state` (candidate, or active/retired for the station's model before any)."""
        authorize(self.sdb, user, "promote_model", "register_model")
        if state not in STATES:
            raise RegistryError(f"state {state!r} is not one of {', '.join(STATES)}")
        with self.sdb.transaction():
            if list(self.sdb.db.query("SELECT 1 AS x FROM model_registry WHERE model_id = ?", [model_id])) or (
                model_id in model_aliases.alias_map(self.sdb.conn).values()
            ):
                raise RegistryError(f"model {model_id[:12]} is already registered; a model is registered once")
            if state == "active" and self._active_id() is not None:
                raise RegistryError("another model is active; register as a candidate and promote it")
            self.sdb.append(
                "model_registry",
                {
                    "model_id": model_id,
                    "parent_id": parent_id,
                    "data_hash": data_hash,
                    "checkpoint": str(checkpoint),
                    "recipe": json.dumps(dict(recipe), sort_keys=True, default=str),
                    "figures": json.dumps(dict(figures), sort_keys=True, default=str),
                    "user": user.name,
                    "reason": reason,
                },
            )
            self._state(model_id, state, user, reason)
            self.sdb.append(
                "events",
                event_row(
                    "model_registered",
                    user.name,
                    model_id,
                    {"state": state, "parent_id": parent_id, "data_hash": data_hash},
                ),
            )
        return self.get(model_id)

    def promote(
        self,
        model_id: str,
        user: Session,
        reason: str,
        tolerance: float = DEFAULT_TOLERANCE,
        set_tolerances: Mapping[str, float] | None = None,
    ) -> RegisteredModel:
        """Make a candidate active (QA), only if it is not worse than the model in use on either held-out set.

        set_tolerances: another allowed drop for a named set (e.g. {"typed_defects": 0.6} for a plant
        whose parts are unlike the generic defects); every tolerance used is recorded in the event.
        """
        authorize(self.sdb, user, "promote_model", "promote_model")
        allowed = tolerances_for(tolerance, set_tolerances)
        if not reason.strip():
            raise RegistryError("a promotion needs a reason; say why this model should go into production")
        model = self.get(model_id)
        if model.state != "candidate":
            raise RegistryError(
                f"model {model.model_id[:12]} is {model.state}, not a candidate;"
                " use `inspector model rollback` to return to an earlier model"
            )
        with self.sdb.transaction():  # the active model is read under the write lock: no promotion race
            current = self._active_id()
            baseline = model.figures.get("baseline_model_id")
            same = current is None or self.current_id(current) == self.current_id(str(baseline))
            problems = (
                []
                if same
                else [
                    f"it was evaluated against model {str(baseline)[:12]}, but {current[:12]} is active now;"
                    " fine-tune again from the active model"
                ]
            )
            problems += promotion_problems(model.figures, tolerance, allowed)
            detail = {
                "reason": reason.strip(),
                "tolerance": tolerance,
                "set_tolerances": allowed,
                "previous": current,
                "figures": {k: model.figures.get(k) for k in ("baseline", "candidate", "baseline_model_id")},
            }
            if problems:
                detail["problems"] = problems
                self.sdb.append("events", event_row("model_promotion_refused", user.name, model.model_id, detail))
            else:
                if current is not None:
                    self._state(current, "retired", user, f"replaced by {model.model_id[:12]}: {reason.strip()}")
                self._state(model.model_id, "active", user, reason.strip())
                # Inside this transaction so that the state change and its record of who, why and
                # the figures commit together.
                self.sdb.append("events", event_row("model_promoted", user.name, model.model_id, detail))
        if problems:  # raised after COMMIT: the refusal itself stays on the record
            raise PromotionRefused(f"model {model.model_id[:12]} was not promoted: " + "; ".join(problems))
        return self.get(model.model_id)

    def rollback(self, model_id: str, user: Session, reason: str) -> RegisteredModel:
        """Make an earlier active model active again (QA); no figures gate an emergency return."""
        authorize(self.sdb, user, "promote_model", "rollback_model")
        if not reason.strip():
            raise RegistryError("a rollback needs a reason; say what went wrong with the model in use")
        model = self.get(model_id)
        with self.sdb.transaction():
            current = self._active_id()
            if current == model.model_id:
                raise RegistryError(f"model {model.model_id[:12]} is already active")
            if not any(h["state"] == "active" for h in self.history(model.model_id)):
                raise RegistryError(
                    f"model {model.model_id[:12]} was never active, so there is nothing to roll back"
                    " to; promote it instead (its figures are checked)"
                )
            if current is not None:
                self._state(current, "retired", user, f"rolled back to {model.model_id[:12]}: {reason.strip()}")
            self._state(model.model_id, "active", user, reason.strip())
            self.sdb.append(
                "events",
                event_row(
                    "model_rolled_back", user.name, model.model_id, {"reason": reason.strip(), "previous": current}
                ),
            )
        return self.get(model.model_id)

    def _active_id(self) -> str | None:
        rows = list(
            self.sdb.db.query(
                "SELECT model_id FROM model_states s WHERE state = 'active'"
                " AND id = (SELECT MAX(id) FROM model_states WHERE model_id = s.model_id)"
            )
        )
        if len(rows) > 1:  # cannot happen through this class; say so rather than pick one
            raise RegistryError(f"{len(rows)} models are active at once; the registry was written around the station")
        return rows[0]["model_id"] if rows else None

    def _state(self, model_id: str, state: str, user: Session, reason: str) -> None:
        self.sdb.append("model_states", {"model_id": model_id, "state": state, "user": user.name, "reason": reason})


def active_model_ref(log: DecisionLog) -> str | None:
    """The checkpoint the station should load (the active model), or None to use the configured one."""
    model = ModelRegistry(log).active()
    return model.checkpoint if model else None
