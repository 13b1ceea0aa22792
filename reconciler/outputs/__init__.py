"""What the tool makes for people besides plans: the periodic report (`report`,
`report_render`), the public e-mail directory (`publish`), and an inventory written from an
existing directory (`importer`)."""
