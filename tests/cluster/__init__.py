"""Tests that run real Pacemaker + Corosync clusters on this machine (see lab/cluster/harness.py)."""
