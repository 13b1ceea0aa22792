"""Reading the inventory: YAML with line numbers (`yamlload`), the schema and whole-inventory
checks (`loader`), the activity CSV (`activity`), and what changed since a git revision
(`gitdiff`). Every problem is reported with its file and line."""
