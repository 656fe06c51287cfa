"""The catalogue: phone models, families and firmware loads, as data.

It sits below the phone and the cluster: both import it, it imports neither.
"""
