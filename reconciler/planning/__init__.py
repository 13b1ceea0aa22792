"""Making the plan: the desired mailboxes (`desired`), the diff against the directory (`plan`),
the pipeline that wires reading, checking, computing and guarding (`pipeline`), the saved plan
file (`planfile`) and its text and markdown forms (`render`)."""
