"""Pacemaker OCF resource agents for OpenStack Cinder.

Kept empty on purpose: every agent invocation imports this package, so it must cost nothing.
"""

__version__ = "0.1.0"
