"""Look at and share finished run folders: read them (``run``), export them (``export``), serve them
in a viser viewer (``viewer``) or a Gradio app (``app``). Nothing here is imported by the methods."""
