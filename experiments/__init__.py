"""Experiments built on zsnb (sweeps, comparisons, tuning, target rules, survey), outside the package.

Each module runs zsnb's public API (`zsnb.harness`, `zsnb.worldeval`, `zsnb.registry`) on `zsnb.world`
scenes; nothing in zsnb imports them. The benchmarks and notebooks do.
"""
