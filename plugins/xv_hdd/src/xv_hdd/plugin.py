"""Entry point of xv_hdd."""
