"""Event kinds by who may write them: the station itself (no user) or only the core method that checks
the permission their meaning needs (DecisionLog.record_event refuses the rest from API callers)."""

from __future__ import annotations

# What the station records on its own (user None): camera and capture faults, model loading, storage.
SYSTEM_EVENT_KINDS = frozenset(
    {
        "model_load_failed",
        "model_loaded",
        "model_switched",
        "model_switch_failed",
        "storage_recovered",
        "drift_alarm",
        "drift_reference_restarted",
        "good_model_load_failed",
    }
)
# camera and capture faults; the line's triggers and output connections (inspector.line)
SYSTEM_EVENT_PREFIXES = ("camera_", "capture_", "trigger_", "line_output_")
# Kinds with a meaning the core gives them: only the method that checks their permission writes them.
CORE_EVENT_KINDS = frozenset(
    {
        "login_ok",
        "login_failed",
        "login_attempt",
        "logout",
        "account_locked",
        "lockout_expired",
        "user_added",
        "user_unlocked",
        "user_deactivated",
        "user_reactivated",
        "role_changed",
        "password_changed",
        "password_rehashed",
        "password_change_required",
        "password_reset_local",
        "credential_sealed",
        "user_row_sealed",
        "first_admin_created",
        "denied",
        "schema_migration",
        "verification",
        "export",
        "model_promoted",
        "model_registered",
        "model_promotion_refused",
        "model_rolled_back",
        "library_seeded",
        "library_edit",
        "model_id_aliased",
        "model_id_unbound",
        "images_archived",
        "good_model_built",  # inspector.learning.good_model, after its QA check
        "good_model_retired",
        "cost_matrix_set",
    }
)
