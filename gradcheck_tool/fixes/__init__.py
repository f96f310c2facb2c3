"""Source fixes: codemods attached to findings, and the engine that applies and verifies them."""
