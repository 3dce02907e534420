"""``python -m dfd.datasets``: the data doctor. For a ``data=`` protocol it reads every dataset's
index (through the index cache, never training), and prints what is there, what is broken and
the command that makes what is missing (`doctor`)."""
