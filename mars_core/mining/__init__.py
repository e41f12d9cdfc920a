"""Hard-negative mining: the room/product pairs worth teaching, chosen by SigLIP similarity."""
