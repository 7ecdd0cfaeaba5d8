"""Sampling processes (not networks): truncation, and later AR/flow samplers."""
