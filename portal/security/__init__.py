"""Passwords, sessions, CSRF tokens and failed-attempt limits."""
