"""xv_buffer."""
