"""Packaging and deployment: the container image, compose stack, Kubernetes, systemd."""
