"""MQTT: the server's publisher (persistent outbox, reconnects) and `streamre subscribe`."""

from streamre.mqtt.broker import BrokerAddress, topic

__all__ = ["BrokerAddress", "topic"]
