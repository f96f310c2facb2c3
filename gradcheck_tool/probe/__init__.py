"""The runtime probe: measure how signal flows forward and backward through a model.

Import from the submodules (``probe.engine``, ``probe.record``); ``record`` is torch-free so
rules and reports can use it without importing torch.
"""
