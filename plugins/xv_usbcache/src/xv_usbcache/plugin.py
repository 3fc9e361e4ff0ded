"""Entry point of xv_usbcache."""
