"""The rules: each province's regulation (`regulations`), addresses handed out by it (`naming`),
suspension, restore and the time rules (`lifecycle`). Pure: no I/O."""
