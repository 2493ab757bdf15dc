"""render layer of wanderview (see docs/design.md)."""
