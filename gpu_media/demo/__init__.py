"""The bundled demo data: ``demo.npz`` and the COCO-format ``coco/`` folder (see SOURCES.md)."""
