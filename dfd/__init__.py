"""dfd: configuration-driven experiments for generalizable facial deepfake detection."""

__version__ = "0.1.0"
