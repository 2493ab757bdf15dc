"""The one camera of wanderview: a batched pinhole camera in OpenCV axes.

Axes: x right, y down, z forward (OpenCV). ``cam_to_world`` maps camera coordinates to world
coordinates. Pixel (u, v) has its centre at (u + 0.5, v + 0.5); ``K`` is in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from wanderview.cameras.transforms import project_points, rigid_inverse


@dataclass(frozen=True)
class Camera:
    """A pinhole camera, or a batch of cameras that share one image size.

    Attributes:
        K: (..., 3, 3) intrinsics in pixels.
        cam_to_world: (..., 4, 4) pose, OpenCV axes.
        width: image width in pixels.
        height: image height in pixels.
    """

    K: torch.Tensor
    cam_to_world: torch.Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        K = torch.as_tensor(self.K, dtype=torch.float32)
        c2w = torch.as_tensor(self.cam_to_world, dtype=torch.float32, device=K.device)
        if K.shape[-2:] != (3, 3):
            raise ValueError(f"K must be (..., 3, 3), got {tuple(K.shape)}")
        if c2w.shape[-2:] != (4, 4):
            raise ValueError(f"cam_to_world must be (..., 4, 4), got {tuple(c2w.shape)}")
        if K.shape[:-2] != c2w.shape[:-2]:
            K = K.expand(*c2w.shape[:-2], 3, 3) if K.ndim == 2 else K
            if K.shape[:-2] != c2w.shape[:-2]:
                shapes = f"K {tuple(K.shape)} vs cam_to_world {tuple(c2w.shape)}"
                raise ValueError(f"batch shapes differ: {shapes}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "cam_to_world", c2w)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    # ---- construction -------------------------------------------------------------------------
    @staticmethod
    def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> torch.Tensor:
        """(3, 3) K with square pixels, principal point at the image centre.

        ``fov_deg`` is the horizontal field of view of the full image width.
        """
        if not 0.0 < fov_deg < 180.0:
            raise ValueError(f"fov must be in (0, 180) degrees, got {fov_deg}")
        focal = 0.5 * width / math.tan(math.radians(fov_deg) / 2.0)
        return torch.tensor([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])

    @classmethod
    def from_fov(
        cls, fov_deg: float, width: int, height: int, cam_to_world: torch.Tensor | None = None
    ) -> Camera:
        """A camera with horizontal field of view ``fov_deg``; identity pose unless given (4, 4)."""
        K = cls.intrinsics_from_fov(fov_deg, width, height)
        pose = torch.eye(4) if cam_to_world is None else torch.as_tensor(cam_to_world, dtype=torch.float32)
        return cls(K, pose, width, height)

    @classmethod
    def from_focal(
        cls, focal: float, width: int, height: int, cam_to_world: torch.Tensor | None = None
    ) -> Camera:
        """A camera with focal length ``focal`` pixels and the principal point at the centre."""
        K = torch.tensor([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
        pose = torch.eye(4) if cam_to_world is None else torch.as_tensor(cam_to_world, dtype=torch.float32)
        return cls(K, pose, width, height)

    @classmethod
    def look_at(
        cls,
        eye: Sequence[float] | torch.Tensor,
        target: Sequence[float] | torch.Tensor,
        K: torch.Tensor,
        width: int,
        height: int,
        up: Sequence[float] | torch.Tensor = (0.0, -1.0, 0.0),
    ) -> Camera:
        """A camera at ``eye`` (3,) whose +z axis points at ``target`` (3,).

        ``up`` is the world direction that appears up in the image; in OpenCV axes the default
        world up is -y.
        """
        return cls(K, look_at_pose(eye, target, up), width, height)

    @classmethod
    def stack(cls, cameras: Sequence[Camera]) -> Camera:
        """Stack single cameras of one image size into a batch of shape (N,)."""
        if not cameras:
            raise ValueError("cannot stack an empty list of cameras")
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise ValueError(f"cameras of one batch must share an image size, got {sorted(sizes)}")
        return cls(
            torch.stack([c.K for c in cameras]),
            torch.stack([c.cam_to_world for c in cameras]),
            cameras[0].width,
            cameras[0].height,
        )

    # ---- batch access -------------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        return self.cam_to_world.shape[:-2]

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("a single Camera has no length")
        return self.batch_shape[0]

    def __getitem__(self, index) -> Camera:
        return Camera(self.K[index], self.cam_to_world[index], self.width, self.height)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def to(self, device: torch.device | str) -> Camera:
        return Camera(self.K.to(device), self.cam_to_world.to(device), self.width, self.height)

    @property
    def device(self) -> torch.device:
        return self.cam_to_world.device

    # ---- derived quantities -------------------------------------------------------------------
    @property
    def world_to_cam(self) -> torch.Tensor:
        """(..., 4, 4) inverse of the pose."""
        return rigid_inverse(self.cam_to_world)

    def inverse(self) -> torch.Tensor:
        """(..., 4, 4) world-to-camera matrix (same as :attr:`world_to_cam`)."""
        return self.world_to_cam

    @property
    def center(self) -> torch.Tensor:
        """(..., 3) camera centre in world coordinates."""
        return self.cam_to_world[..., :3, 3]

    @property
    def fx(self) -> torch.Tensor:
        return self.K[..., 0, 0]

    @property
    def fy(self) -> torch.Tensor:
        return self.K[..., 1, 1]

    @property
    def cx(self) -> torch.Tensor:
        return self.K[..., 0, 2]

    @property
    def cy(self) -> torch.Tensor:
        return self.K[..., 1, 2]

    @property
    def fov_x_deg(self) -> float:
        """Horizontal field of view in degrees (first camera of a batch)."""
        fx = float(self.fx.reshape(-1)[0])
        return math.degrees(2.0 * math.atan(self.width / (2.0 * fx)))

    def with_pose(self, cam_to_world: torch.Tensor) -> Camera:
        """Same intrinsics, new pose (4, 4) or (..., 4, 4)."""
        K = self.K
        pose = torch.as_tensor(cam_to_world, dtype=torch.float32, device=self.device)
        if K.ndim == 2 and pose.ndim > 2:
            K = K.expand(*pose.shape[:-2], 3, 3).clone()
        return Camera(K, pose, self.width, self.height)

    def scaled(self, width: int, height: int) -> Camera:
        """The same camera for an image resized to ``width`` x ``height`` (K rows scaled)."""
        sx, sy = width / self.width, height / self.height
        S = torch.diag(torch.tensor([sx, sy, 1.0], device=self.device))
        return Camera(S @ self.K, self.cam_to_world, width, height)

    def cropped(self, left: int, top: int, width: int, height: int) -> Camera:
        """The same camera for the ``width`` x ``height`` crop whose top-left pixel is (left, top)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"crop size must be positive, got {width}x{height}")
        if (left, top, width, height) == (0, 0, self.width, self.height):
            return self
        K = self.K.clone()
        K[..., 0, 2] -= left
        K[..., 1, 2] -= top
        return Camera(K, self.cam_to_world, width, height)

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points of a single camera.

        Args:
            points: (N, 3) world coordinates.
        Returns:
            uv: (N, 2) pixel coordinates (pixel centres at +0.5); z: (N,) z-depth in the camera.
        """
        if self.batch_shape:
            raise ValueError("project() needs a single camera; index the batch first")
        if points.ndim != 2 or points.shape[-1] != 3:
            raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
        return project_points(points, self.K, self.world_to_cam)


def look_at_pose(
    eye: Sequence[float] | torch.Tensor,
    target: Sequence[float] | torch.Tensor,
    up: Sequence[float] | torch.Tensor = (0.0, -1.0, 0.0),
) -> torch.Tensor:
    """(4, 4) OpenCV cam_to_world at ``eye`` looking at ``target``; ``up`` appears up in the image."""
    eye_t = torch.as_tensor(eye, dtype=torch.float32)
    fwd = torch.as_tensor(target, dtype=torch.float32) - eye_t
    fwd = fwd / fwd.norm().clamp_min(1e-12)
    up_t = torch.as_tensor(up, dtype=torch.float32)
    # image y points down, so the camera's y axis is the component of -up orthogonal to forward
    right = torch.linalg.cross(fwd, up_t)
    if right.norm() < 1e-8:
        raise ValueError("look_at: up is parallel to the viewing direction")
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    pose = torch.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, fwd, eye_t
    return pose
