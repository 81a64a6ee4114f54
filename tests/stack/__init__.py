"""Real OpenStack services (RabbitMQ, Keystone, Cinder) for the integration tests."""
