"""Tests of the lesson cache (content_cache)."""
