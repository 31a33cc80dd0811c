"""Accounts: sign-in and the administrator's users panel."""
