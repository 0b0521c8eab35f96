"""Subprocessor lists: built from the Plan and the vendor catalog."""
