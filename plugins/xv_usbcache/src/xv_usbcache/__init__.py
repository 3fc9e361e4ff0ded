"""xv_usbcache."""
