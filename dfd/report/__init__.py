"""Results a person reads: a run's files (`results`), tables in Markdown/CSV/LaTeX (`tables`),
plots (`plots`), runs of an MLflow store side by side (`compare`, `python -m dfd.report`), and
what a sweep leaves behind (`study`, `ablation`)."""


def __getattr__(name: str):
    # `from dfd.report import write_report`, as before dfd.report became a package
    if name == "write_report":
        from dfd.report.compare import write_report

        return write_report
    raise AttributeError(f"module 'dfd.report' has no attribute {name!r}")
