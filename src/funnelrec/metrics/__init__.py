"""Pure metric functions (top-n accuracy, coverage, novelty; ranking AUC/GAUC/LogLoss/ECE).

The lowest floor of the package: NumPy only, no project imports, so every layer (fusion
tuning in ``rank``, the guards in ``pipeline``, reports in ``eval``) measures the same way.
"""
