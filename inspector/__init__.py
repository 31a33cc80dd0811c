"""The inspection core: no Qt here, and torch only through `models`."""
