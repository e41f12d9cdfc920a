"""Hydra configs, packaged as `mars_conf` so an installed MARS finds them."""
