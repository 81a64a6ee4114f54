"""Real Pacemaker + Corosync clusters on this machine, and the cinder services run in them."""
