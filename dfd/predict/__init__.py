"""`python -m dfd.predict`: scoring the faces of images and videos with a trained detector
(`dfd.predict.predictor`)."""


def __getattr__(name: str):
    # the names of the former dfd.predict module
    if name == "main":
        from dfd.predict.__main__ import main

        return main
    if name == "run_prediction":
        from dfd.predict.predictor import run_prediction

        return run_prediction
    raise AttributeError(f"module 'dfd.predict' has no attribute {name!r}")
