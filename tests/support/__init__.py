"""What the tests (and benchmarks/) share and the runtime package must not ship: the
vendor simulator's fault injection and the config for accounts pointing at it."""
