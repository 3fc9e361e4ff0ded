"""xv_net."""
