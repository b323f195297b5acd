"""Supply-chain records: what a model was built from and what it runs on."""
