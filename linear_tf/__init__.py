"""Linear Transformers on in-context linear regression (Ahn et al., ICLR 2024).

Modules: `model` (linear/softmax attention stack, row form), `data` (prompt generators), `task` (the
trainloop Task), `sweep` (many runs in one compiled program), `theory` (closed forms), `phenomena`
(measurements behind each figure), `plots` (matplotlib, Agg).
"""
