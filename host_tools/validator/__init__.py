"""The validator: verifies receipts and checkpoints from chargers, keeps the whole log in a
store, acknowledges what it committed, records evidence, and serves proofs."""
