"""Entry point of xv_net."""
