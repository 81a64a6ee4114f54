"""Tests that run real Pacemaker + Corosync clusters on this machine (see harness.py)."""
