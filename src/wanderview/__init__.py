"""wanderview: one image or one prompt to a long, camera-controlled, 3D-consistent scene video."""

import os

# OpenMP threads that wait for work sleep instead of spinning (set before torch loads OpenMP; a
# value the user set wins). Spinning threads take cores that other busy processes need, and a
# spinning thread that lost its core stalls every parallel region: on a loaded machine a run
# then takes several times as long (README: thread settings).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from wanderview.cameras.camera import Camera
from wanderview.errors import WanderviewError
from wanderview.types import RGBD, RenderOutput

__version__ = "0.1.0"
__all__ = ["Camera", "RGBD", "RenderOutput", "WanderviewError", "__version__"]
