"""xv_dsl."""
