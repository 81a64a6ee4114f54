"""Integration tests against real OpenStack services."""
