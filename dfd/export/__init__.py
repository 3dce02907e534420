"""`python -m dfd.export`: a trained detector as one file others can run without dfd
(`dfd.export.traced`: ONNX and TorchScript)."""


def __getattr__(name: str):
    # the names of the former dfd.export module
    if name == "main":
        from dfd.export.__main__ import main

        return main
    if name == "export_checkpoint":
        from dfd.export.traced import export_checkpoint

        return export_checkpoint
    raise AttributeError(f"module 'dfd.export' has no attribute {name!r}")
