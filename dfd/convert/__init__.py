"""`python -m dfd.convert`: another code base's trained detector as a dfd checkpoint folder,
one module per source format (`lightning`: the paper authors' Lightning checkpoint)."""


def __getattr__(name: str):
    # the names of the former dfd.convert module
    if name == "main":
        from dfd.convert.__main__ import main

        return main
    if name == "convert":
        from dfd.convert.lightning import convert

        return convert
    raise AttributeError(f"module 'dfd.convert' has no attribute {name!r}")
