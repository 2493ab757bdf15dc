"""Rigid transforms and the pinhole projection as pure tensor functions; they live in
``wanderview.cameras.transforms`` (the lowest layer, so that cameras never imports geometry) and are
re-exported here."""

from wanderview.cameras.transforms import project_points, rigid_inverse, transform_points

__all__ = ["project_points", "rigid_inverse", "transform_points"]
