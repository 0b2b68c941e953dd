"""The e2e tier: real processes over real sockets, deploy files, packaging, soak."""
