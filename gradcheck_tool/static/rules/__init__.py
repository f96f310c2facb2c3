"""The static rules, one module per family; each reads a
:class:`~gradcheck_tool.static.analysis.context.SourceContext` and yields findings.
``static.engine`` registers and runs them; their codemods live in ``gradcheck_tool.fixes``."""
