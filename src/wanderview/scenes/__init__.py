"""scenes layer of wanderview (see docs/design.md)."""
