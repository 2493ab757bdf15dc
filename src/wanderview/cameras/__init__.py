"""Cameras and camera paths."""

from wanderview.cameras.camera import Camera, look_at_pose

__all__ = ["Camera", "look_at_pose"]
