"""Code emitters over the scheduled program (installed as `rnndsl.backends`).

Backends import the IR, never the other way round, and importing rnndsl never needs cupy.
"""
