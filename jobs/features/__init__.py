"""The feature stage: raw partitions -> cleaning -> features.user_daily -> the lifetime and 90-day window
states -> features.user_features. ``runner.build_features`` runs it for one logical date.

Modules: ``planning`` (which days and raw partitions), ``cleaning`` (the cleaning policy as data),
``cleaning_params`` (caps and medians), ``user_daily``, ``lifetime``, ``window_state``, ``calendar``
(holidays), ``user_features``, ``runner``.
"""
