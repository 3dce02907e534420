"""Scoring frames with a detector: the inference loop over any number of processes
(`inference`), every target of a run (`targets`), the robustness passes (`robustness`), face
crops one batch at a time (`faces`) and the metrics computed from the scores (`metrics`)."""
