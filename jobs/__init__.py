"""The Spark stages: features, validation, scoring, profiles, BI publishing. Import only ``core``."""
