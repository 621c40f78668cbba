"""Switchboard's benchmarks (SPEC §12): `python -m bench [scenario] [--quick]`. Not part of the product."""
