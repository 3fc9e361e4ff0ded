"""Entry point of xv_nvme."""
