"""Steps for features/restore_drill.feature (being written)."""
