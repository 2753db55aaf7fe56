"""Failures of a job's later steps, with messages meant for the physicist who submitted it."""

from __future__ import annotations


class RegistrationError(Exception):
    """The model was trained but the registry refused or could not take it."""
