"""What the agents need of OpenStack: cinder.conf facts, Keystone tokens, HTTP, the broker."""
