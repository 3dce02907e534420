"""Detector building blocks: backbones, PEFT adapters, heads."""
