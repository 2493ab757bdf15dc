"""Rigid transforms as pure tensor functions; they live in ``wanderview.cameras.transforms`` (the
lowest layer, so that cameras never imports geometry) and are re-exported here."""

from wanderview.cameras.transforms import rigid_inverse, transform_points

__all__ = ["rigid_inverse", "transform_points"]
