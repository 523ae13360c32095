"""hrpose: top-down human pose estimation with HRNet on COCO-format data."""

__version__ = "0.1.0"
