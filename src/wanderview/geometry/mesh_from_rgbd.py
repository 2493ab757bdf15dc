"""Triangle meshes from RGB-D images, and the rules that cut faces across depth discontinuities.

Vertex layout: a mesh made from an (H, W) image keeps all ``H * W`` vertices, vertex ``v * W + u``
being pixel (u, v), so a caller can go from pixels to vertices by index. Faces exist only where
all three pixels are valid. :func:`compact_mesh` drops the unreferenced vertices afterwards.

Winding: each 2x2 pixel quad ``a=(u,v) b=(u+1,v) c=(u,v+1) d=(u+1,v+1)`` is split along the
b-c diagonal into faces ``(a, c, b)`` and ``(b, c, d)``. With OpenCV axes (x right, y down,
z forward) ``cross(c - a, b - a)`` then points to -z for a surface seen by the camera: face
normals from :func:`face_normals` point toward the camera that captured the image.
"""

from __future__ import annotations

import torch

from wanderview.geometry.edges import depth_edges
from wanderview.geometry.unproject import unproject_depth


def grid_faces(height: int, width: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Two triangles per 2x2 pixel quad over an (H, W) vertex grid (vertex index ``v * W + u``).

    Args:
        height, width: grid size in vertices (pixels).
        valid: (H, W) bool or None; a face is kept only if its three vertices are valid.
    Returns:
        (F, 3) long vertex indices; F = 2 (H-1)(W-1) when ``valid`` is None. Winding as in the
        module docstring (normals toward the capturing camera).

    Example:
        >>> grid_faces(2, 2).tolist()
        [[0, 2, 1], [1, 2, 3]]
    """
    if height < 1 or width < 1:
        raise ValueError(f"grid size must be positive, got {height}x{width}")
    device = valid.device if valid is not None else None
    idx = torch.arange(height * width, device=device).reshape(height, width)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    # interleave so both triangles of one quad are neighbours in the face list
    faces = torch.stack([torch.stack([a, c, b], -1), torch.stack([b, c, d], -1)], 1).reshape(-1, 3)
    if valid is not None:
        if valid.shape != (height, width) or valid.dtype != torch.bool:
            raise ValueError(
                f"valid must be a ({height}, {width}) bool tensor, got {tuple(valid.shape)} {valid.dtype}"
            )
        faces = faces[valid.reshape(-1)[faces].all(dim=1)]
    return faces


def mesh_from_rgbd(
    rgb: torch.Tensor, depth: torch.Tensor, camera, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lift an RGB-D image to a world-space grid mesh with vertex colours.

    Vertices sit at the pixel centres (+0.5) unprojected with ``unproject_depth``. All ``H * W``
    vertices are kept (index ``v * W + u``); faces use only pixels with finite positive depth where
    ``mask`` is True. Vertices of pixels without a finite positive depth are placed at the camera
    centre (z = 0 in that camera, so any near-plane test drops them) and are used by no face.

    Args:
        rgb: (3, H, W) colours in [0, 1].
        depth: (1, H, W) z-depth, ``inf`` = empty.
        camera: a single :class:`~wanderview.cameras.camera.Camera` of size (W, H).
        mask: (1, H, W) bool or None; True = pixel may be meshed.
    Returns:
        vertices (H*W, 3) world points, colors (H*W, 3), faces (F, 3) long.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be (3, H, W), got {tuple(rgb.shape)}")
    H, W = rgb.shape[1:]
    if depth.shape != (1, H, W):
        raise ValueError(f"depth must be (1, {H}, {W}), got {tuple(depth.shape)}")
    if mask is not None and (mask.shape != (1, H, W) or mask.dtype != torch.bool):
        raise ValueError(f"mask must be a (1, {H}, {W}) bool tensor, got {tuple(mask.shape)} {mask.dtype}")
    if camera.batch_shape:
        raise ValueError(f"mesh_from_rgbd needs a single camera, got a batch {tuple(camera.batch_shape)}")
    if (camera.width, camera.height) != (W, H):
        raise ValueError(f"camera is {camera.width}x{camera.height} but the image is {W}x{H}")
    valid = torch.isfinite(depth[0]) & (depth[0] > 0)
    if mask is not None:
        valid = valid & mask[0]
    # depth 0 unprojects to the camera centre; inf would give nan (0 * inf) on the optical axis
    safe_depth = torch.where(valid, depth[0], torch.zeros_like(depth[0]))[None]
    cam_to_world = camera.cam_to_world.to(depth)
    vertices = unproject_depth(safe_depth, camera.K.to(depth), cam_to_world).reshape(-1, 3)
    colors = rgb.permute(1, 2, 0).reshape(-1, 3).to(vertices.dtype)
    faces = grid_faces(H, W, valid)
    return vertices, colors, faces


def compact_mesh(
    vertices: torch.Tensor, colors: torch.Tensor, faces: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop vertices that no face uses and renumber the faces.

    Args:
        vertices: (V, 3); colors: (V, C); faces: (F, 3) long.
    Returns:
        vertices (V', 3), colors (V', C), faces (F, 3) renumbered, old_to_new (V,) long with -1
        for dropped vertices.
    """
    _check_mesh(vertices, faces)
    if colors.shape[0] != vertices.shape[0]:
        raise ValueError(f"colors must have one row per vertex ({len(vertices)}), got {tuple(colors.shape)}")
    used = torch.zeros(vertices.shape[0], dtype=torch.bool, device=vertices.device)
    used[faces.reshape(-1)] = True
    old_to_new = torch.full((vertices.shape[0],), -1, dtype=torch.long, device=vertices.device)
    old_to_new[used] = torch.arange(int(used.sum()), device=vertices.device)
    return vertices[used], colors[used], old_to_new[faces], old_to_new


def _check_mesh(vertices: torch.Tensor, faces: torch.Tensor) -> None:
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit normals ``normalize(cross(v1 - v0, v2 - v0))``; zero for degenerate faces.

    Args:
        vertices: (V, 3); faces: (F, 3) long.
    Returns:
        (F, 3) unit normals (toward the capturing camera for faces from :func:`grid_faces`).
    """
    _check_mesh(vertices, faces)
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    normal = torch.linalg.cross(v1 - v0, v2 - v0)
    return normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-20)


def remove_stretched_faces(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cam_center: torch.Tensor,
    eps: float = -0.05,
    on_edge: torch.Tensor | None = None,
) -> torch.Tensor:
    """Drop faces seen nearly edge-on from ``cam_center`` (SceneScape's rule).

    A face is *stretched* unless ``dot(normalize(face_centre - cam_center), normal) < eps``. Faces that
    bridge a depth discontinuity are almost parallel to the viewing ray (dot near 0); faces turned
    away from the camera (dot > 0) are stretched too. A fronto-parallel face has dot = -1.

    The rule alone also cuts smooth surfaces seen at grazing angles (a floor or wall far off to the
    side), which opens cracks in continuous content; so, as in SceneScape, pass ``on_edge`` (faces
    touching a depth discontinuity, e.g. :func:`faces_on_depth_edges`) and only faces that are
    stretched *and* on an edge are dropped.

    Args:
        vertices: (V, 3); faces: (F, 3) long; cam_center: (3,) camera centre, same frame.
        eps: cosine threshold (negative: the face must face the camera by at least this much).
        on_edge: (F,) bool or None (None: every face counts as on an edge, the rule alone).
    Returns:
        (F', 3) the kept faces, in their original order.
    """
    _check_mesh(vertices, faces)
    if cam_center.shape != (3,):
        raise ValueError(f"cam_center must be (3,), got {tuple(cam_center.shape)}")
    if on_edge is not None and on_edge.shape != faces.shape[:1]:
        raise ValueError(f"on_edge must be ({faces.shape[0]},), got {tuple(on_edge.shape)}")
    centre = vertices[faces].mean(dim=1)
    view = centre - cam_center.to(vertices)
    view = view / view.norm(dim=-1, keepdim=True).clamp_min(1e-20)
    keep = (view * face_normals(vertices, faces)).sum(-1) < eps
    if on_edge is not None:
        keep |= ~on_edge.to(keep.device)
    return faces[keep]


def faces_on_depth_edges(
    faces_px: torch.Tensor, depth: torch.Tensor, threshold: float = 0.3, jump_ratio: float | None = None
) -> torch.Tensor:
    """Faces of a pixel-grid mesh that span a depth discontinuity.

    SceneScape's test: a corner pixel is on the Sobel edge mask of the normalised disparity
    (:func:`~wanderview.geometry.edges.depth_edges`). That mask is relative to the image's disparity
    range, so near content (a floor right below a low camera) can hide every far silhouette from it;
    ``jump_ratio`` adds a scale-free test: the face's corner depths differ by more than that factor
    (on a plane, neighbouring pixels differ by more than 1.5x only within about two pixels of its
    horizon).

    Args:
        faces_px: (F, 3) long pixel indices ``v * W + u`` of each face's corners.
        depth: (1, H, W) z-depth the faces were made from (``inf`` = empty).
        threshold: :func:`~wanderview.geometry.edges.depth_edges` threshold.
        jump_ratio: also flag faces whose largest corner depth exceeds ``jump_ratio`` x the smallest;
            None = the Sobel mask alone.
    Returns:
        (F,) bool, True where the face spans a discontinuity.
    """
    if faces_px.ndim != 2 or faces_px.shape[1] != 3:
        raise ValueError(f"faces_px must be (F, 3), got {tuple(faces_px.shape)}")
    if faces_px.numel() == 0:
        return torch.zeros(faces_px.shape[0], dtype=torch.bool, device=faces_px.device)
    on_edge = depth_edges(depth, threshold).reshape(-1)[faces_px].any(dim=1)
    if jump_ratio is not None:
        z = depth.reshape(-1)[faces_px]
        on_edge |= z.amax(dim=1) > jump_ratio * z.amin(dim=1)
    return on_edge


def remove_long_edges(
    vertices: torch.Tensor, faces: torch.Tensor, cam_center: torch.Tensor, max_ratio: float = 0.05
) -> torch.Tensor:
    """Drop faces whose longest edge exceeds ``max_ratio`` x the face centre's distance to the camera.

    A grid face normally spans about ``distance / focal`` (one pixel's footprint), so a face many
    pixel footprints long stretches across a discontinuity. The default 0.05 is about 22 pixels at
    a 60-degree, 512-pixel-wide camera.

    Args:
        vertices: (V, 3); faces: (F, 3) long; cam_center: (3,) camera centre, same frame.
        max_ratio: longest edge allowed, relative to the distance from the camera.
    Returns:
        (F', 3) the kept faces, in their original order.
    """
    _check_mesh(vertices, faces)
    if cam_center.shape != (3,):
        raise ValueError(f"cam_center must be (3,), got {tuple(cam_center.shape)}")
    corners = vertices[faces]  # (F, 3, 3)
    edges = corners - corners.roll(1, dims=1)
    longest = edges.norm(dim=-1).amax(dim=1)
    distance = (corners.mean(dim=1) - cam_center.to(vertices)).norm(dim=-1)
    return faces[longest <= max_ratio * distance]


def remove_faces_at_edges(faces: torch.Tensor, edge_mask: torch.Tensor, width: int) -> torch.Tensor:
    """Drop faces of a pixel-grid mesh that touch a depth-edge pixel.

    Use with :func:`wanderview.geometry.edges.depth_edges` (threshold 0.3) on the depth the mesh
    was made from; vertex ``v * W + u`` is pixel (u, v).

    Args:
        faces: (F, 3) long grid-mesh faces (before :func:`compact_mesh`).
        edge_mask: (1, H, W) bool, True on edge pixels.
        width: W, the image width the vertex indices were made with.
    Returns:
        (F', 3) the kept faces, in their original order.
    """
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    if edge_mask.ndim != 3 or edge_mask.shape[0] != 1 or edge_mask.dtype != torch.bool:
        raise ValueError(
            f"edge_mask must be a (1, H, W) bool tensor, got {tuple(edge_mask.shape)} {edge_mask.dtype}"
        )
    if edge_mask.shape[2] != width:
        raise ValueError(f"edge_mask is {edge_mask.shape[2]} pixels wide but width is {width}")
    if faces.numel() and int(faces.max()) >= edge_mask[0].numel():
        raise ValueError(f"faces index vertex {int(faces.max())} beyond the {tuple(edge_mask.shape)} grid")
    touches = edge_mask.reshape(-1)[faces].any(dim=1)
    return faces[~touches]
