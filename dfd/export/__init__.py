"""`python -m dfd.export`: a trained detector as one file others can run without dfd
(`dfd.export.traced`: ONNX and TorchScript), as a Hugging Face model folder with a generated
model card (`dfd.export.hf`, `dfd.export.model_card`), and as an MLflow model
(`dfd.export.mlflow_model`, logged by `dfd.tracking.logged_model`)."""


def __getattr__(name: str):
    # the names of the former dfd.export module
    if name == "main":
        from dfd.export.__main__ import main

        return main
    if name == "export_checkpoint":
        from dfd.export.traced import export_checkpoint

        return export_checkpoint
    raise AttributeError(f"module 'dfd.export' has no attribute {name!r}")
