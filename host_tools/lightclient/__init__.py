"""The light client: what a driver or auditor runs on one receipt bundle, offline."""
