"""One module per CLI verb. Each exposes ``register(subparsers)``; the parser it adds carries a
``func(args) -> int`` default that runs the verb."""
