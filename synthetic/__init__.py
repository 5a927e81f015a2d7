"""Deterministic synthetic e-commerce warehouse with planted personas (demo data; see ``generator``).

Modules, in the order the data is made:

* ``generator``: ``generate()``, the entry point; writes the partitions, owns the rng streams.
* ``personas``: persona names, shares, per-persona parameters and activity trajectories.
* ``population``: the users (habits, signup, raw.users rows) and the product catalogue.
* ``day``: one UTC day, calling the stages below in their fixed rng order.
* ``sessions``: who is active on a day and what each session holds.
* ``events``: the events of the sessions, causally ordered and timed; raw.events rows.
* ``orders``: one order per session with purchases; raw.orders rows.
* ``dirt``: junk rows, price outliers and late arrival for the cleaning stage.
* ``columns``: id and timestamp column helpers.
"""
