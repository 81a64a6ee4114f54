"""Tests of cinder-ocf."""
