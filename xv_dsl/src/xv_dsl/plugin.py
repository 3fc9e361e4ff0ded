"""Entry point of xv_dsl."""
