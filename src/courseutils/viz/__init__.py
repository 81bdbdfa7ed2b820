"""Layer viz: plots and widgets. They draw arrays that lower layers computed.

- ``plotting``: shared figure helpers and the lesson 01/02 plots.
- ``plot_quality``: quality-vs-size plots (lesson 03) and the size-vs-KLD Pareto plot (lesson 08).
- ``plot_sensitivity``: sensitivity and pruning plots (lessons 04, 05), error and stability curves (lesson 09).
- ``plot_awq``: AWQ's alpha search and methods beside a published trend (lesson 07).
- ``plot_items``: quiz item statistics for instructors (difficulty against discrimination).
- ``widgets_quality``: the interactive widgets of lessons 00 and 03.
- ``widgets_allocation``: the size-budget widget of lesson 08 (mixed-precision allocation).
- ``widgets_stability``: the calibration-size widget of lesson 09 (how an estimate's ranking settles).

May import: core, numerics, model, ggml, llamacpp, calib, algorithms, scoring.
"""
