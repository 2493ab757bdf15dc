"""Scenes: add(rgb, depth, camera, mask) fuses new content; render(camera) -> RenderOutput."""
