"""Entry point of xv_cpu."""
