"""Training: optimizer rules, train state and step, sharding, checkpoints and the loop."""
