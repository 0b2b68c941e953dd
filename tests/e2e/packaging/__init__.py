"""Packaging tests: the container image, compose, Kubernetes, Helm and systemd files."""
