"""xv_nvme."""
