"""xv_hdd."""
