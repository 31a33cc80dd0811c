"""Shared fixtures. Tests never touch the network: the HF hub is switched off before anything imports it."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Qt tests run headless whether pytest is started by `make test` or by hand.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

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


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "default_bundle" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
