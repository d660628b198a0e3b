"""Policy files: the frozen policy model, the loader (every error with file and line), the JSON Schema
built from the rule registry, and allowOptOut. Reads files and YAML; never serves or evaluates."""
