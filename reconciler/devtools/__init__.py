"""Development tools, never imported by the core: a throwaway slapd (`throwaway`) and synthetic
provinces for the benchmark and the scale tests (`synth`)."""
