"""Entry point of xv_buffer."""
