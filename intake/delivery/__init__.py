"""Delivery of intake bundles to the clinic's record system."""
