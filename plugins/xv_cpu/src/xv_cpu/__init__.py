"""xv_cpu."""
