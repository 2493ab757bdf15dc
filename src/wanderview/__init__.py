"""wanderview: one image or one prompt to a long, camera-controlled, 3D-consistent scene video."""

from wanderview.cameras.camera import Camera
from wanderview.errors import WanderviewError
from wanderview.types import RGBD, RenderOutput

__version__ = "0.1.0"
__all__ = ["Camera", "RGBD", "RenderOutput", "WanderviewError", "__version__"]
