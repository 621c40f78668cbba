"""The benchmark scenarios of SPEC §12; each module's `run(quick)` builds its own stack and returns a Result."""
