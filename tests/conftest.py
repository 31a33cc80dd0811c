"""Shared fixtures. Tests never touch the network: the HF hub is switched off before anything imports it."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Qt tests run headless whether pytest is started by `make test` or by hand.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable, Mapping  # noqa: E402

import pytest  # noqa: E402

# models/torch are imported inside the fixtures, not here: core and UI tests (and the dependency-rule
# check) must be able to run without importing torch just because this conftest was loaded.


@pytest.fixture(scope="session")
def tiny_bundle():
    """The random-initialised inspector-tiny model on CPU (builds in well under a second). Do not mutate."""
    from models.factory import create_model

    return create_model("inspector-tiny", device="cpu")


@pytest.fixture(scope="session")
def default_bundle():
    """The real inspector-default model (pretrained towers from pip packages), built once per session.

    Tests that use it are marked ``slow`` automatically. Do not mutate it: copy the model first.
    """
    from models.factory import create_model

    return create_model("inspector-default", device="cpu")


def _add_accounts(
    log,
    roles: Mapping[str, str] | None = None,
    *,
    passwords: Mapping[str, str] | str = "{name}-pass-1",
    admin_password: str | None = None,
    printed_name: Callable[[str], str] | None = None,
    sign_in: bool = False,
) -> dict:
    """Create the first admin ("admin") and one account per name -> role on a DecisionLog.

    ``passwords`` is a dict name -> password (its "admin" entry, if any, is the admin's) or a template
    formatted with the name. Returns name -> signed-in session: the admin always, the other accounts
    only with ``sign_in`` (each right after it is added; a sign-in is an audited event).
    """

    def password_of(name: str) -> str:
        return passwords.format(name=name) if isinstance(passwords, str) else passwords[name]

    if admin_password is None:
        admin_password = "admin-pass-1" if isinstance(passwords, str) else passwords.get("admin", "admin-pass-1")
    log.users.create_first_admin("admin", admin_password)
    sessions = {"admin": log.login("admin", admin_password)}
    for name, role in (roles or {}).items():
        extra = {"printed_name": printed_name(name)} if printed_name else {}
        log.users.add_user(name, role, password_of(name), sessions["admin"], **extra, temporary=False)
        if sign_in:
            sessions[name] = log.login(name, password_of(name))
    return sessions


@pytest.fixture(scope="session")
def add_accounts():
    """The account setup most tests need: ``add_accounts(log, {"qa1": "qa", "op1": "operator"})``."""
    return _add_accounts


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "default_bundle" in fixtures:
            item.add_marker(pytest.mark.slow)
        if "cli_server" in fixtures:  # the reliability tests' `inspector` child processes
            item.add_marker(pytest.mark.subprocess)
