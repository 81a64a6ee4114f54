"""Real OpenStack services (RabbitMQ, Keystone, Cinder) for the tests, the demo and the bench."""
